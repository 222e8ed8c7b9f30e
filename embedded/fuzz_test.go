package embedded

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// walSeed returns the WAL a few batches leave, for seeding the fuzzer.
func walSeed(f *testing.F) []byte {
	f.Helper()
	dir := f.TempDir()
	s, err := Open(dir, Options{CheckpointBytes: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	var m storetest.Model
	storetest.RandomBatches(f, s, &m, storetest.NewGen(20), 4, 20)
	data, err := os.ReadFile(filepath.Join(dir, walName(0)))
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	return data
}

// FuzzRecoverWAL opens a data directory whose WAL holds arbitrary bytes:
// recovery either fails with an error or opens a store that works; it never
// panics, hangs or allocates by a corrupt length.
func FuzzRecoverWAL(f *testing.F) {
	seed := walSeed(f)
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Add([]byte{5, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, wal []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, walName(0)), wal, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			return
		}
		defer s.Close()
		if _, err := s.Query(context.Background(), apiusage.Query{Interval: everything, GroupBy: []apiusage.Dimension{apiusage.DimUser}}); err != nil {
			t.Fatalf("Query after recovery: %v", err)
		}
		if _, err := s.Append(context.Background(), apiusage.Batch{Events: storetest.NewGen(1).Events(3)}); err != nil {
			t.Fatalf("Append after recovery: %v", err)
		}
	})
}

// FuzzRecoverSnapshot opens a data directory whose snapshot holds arbitrary
// bytes: an error or a working store, never a panic.
func FuzzRecoverSnapshot(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	var m storetest.Model
	storetest.RandomBatches(f, s, &m, storetest.NewGen(21), 4, 20)
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, snapPrefix+"*"))
	if len(snaps) != 1 {
		f.Fatalf("snapshots = %v, want one", snaps)
	}
	seed, err := os.ReadFile(snaps[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, snap []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, snapName(1)), snap, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			return
		}
		defer s.Close()
		if _, err := s.Query(context.Background(), apiusage.Query{Interval: everything, GroupBy: []apiusage.Dimension{apiusage.DimClient}}); err != nil {
			t.Fatalf("Query after recovery: %v", err)
		}
	})
}
