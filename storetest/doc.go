// Package storetest holds what every implementation of apiusage.Store is held
// to: a brute-force oracle (Count), a reference model of Append's
// idempotency and deduplication (Model), a generator of reproducible events,
// batches and queries that cluster on the edges stores get wrong (Gen), and
// the contract suite (Run) built from them.
//
// A store's tests call Run with a constructor of empty stores:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) apiusage.Store {
//			s := open(t) // a new, empty store
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The helpers Run is made of (AppendBatch, CheckQuery, CheckClientNames,
// RandomBatches, DiffRows) are exported for a store's own tests, such as
// reopening or crash recovery, and for property tests of the server.
package storetest
