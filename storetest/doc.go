// Package storetest holds what every implementation of apiusage.Store is held
// to: a brute-force oracle (Count) and the contract suite (Run).
package storetest
