package embedded

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/apiusage/apiusage/storetest"
)

// TestSnapshotV1 opens a data directory holding only a snapshot of version
// 1, written by the store as it was before tables were frozen (30 batches
// of storetest.NewGen(21), up to 100 events each), and holds it to the
// oracle: every later version must go on reading it.
func TestSnapshotV1(t *testing.T) {
	const name = "snap-00000000000000000001.bin"
	data, err := os.ReadFile(filepath.Join("testdata", "v1", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	g := storetest.NewGen(21)
	m := &storetest.Model{}
	for _, b := range g.Batches(30, 100) {
		m.Append(b)
	}
	s := openTest(t, dir, Options{})
	checkAll(t, s, m.Events(), g)
	storetest.CheckClientNames(t, s, m)
	if frozen, _ := tableStats(s); frozen == 0 {
		t.Error("no table is frozen after loading the snapshot")
	}
}
