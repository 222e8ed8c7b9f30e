package embedded

import (
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// openTest opens a store in a new temporary directory and closes it when the
// test ends.
func openTest(tb testing.TB, dir string, opts Options) *Store {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	s, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) apiusage.Store { return openTest(t, "", Options{}) })
}

// TestContractSmallCheckpoints runs the contract with a checkpoint every few
// kilobytes, so that snapshots are taken while batches keep coming.
func TestContractSmallCheckpoints(t *testing.T) {
	storetest.Run(t, func(t *testing.T) apiusage.Store { return openTest(t, "", Options{CheckpointBytes: 4 << 10}) })
}
