package embedded

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
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

// TestSnapshotV2 opens a data directory of version 2, written by the store
// before it had user rollups (a snapshot and the cold files it refers to:
// 2,000 events of storetest.NewGen(22) over six days, as packingStore
// appends them), and holds it to the oracle: Open derives the user
// rollups from the hours, and the snapshot it writes then has them.
func TestSnapshotV2(t *testing.T) {
	dir := t.TempDir()
	entries, err := os.ReadDir(filepath.Join("testdata", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("testdata", "v2", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g := storetest.NewGen(22)
	m := &storetest.Model{}
	events := daysOfEvents(g, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 6, 2000)
	for i := 0; i < len(events); i += 100 {
		m.Append(apiusage.Batch{Events: events[i : i+100]})
	}
	// Round 0 derives the user rollups and writes them at Close; round 1
	// reads them.
	for round := range 2 {
		s := openTest(t, dir, Options{})
		if packed, cold := coldCounts(s); cold == 0 || round == 0 && packed == 0 {
			t.Fatalf("round %d: %d of %d tables of cold days packed", round, packed, cold)
		}
		s.mu.RLock()
		for _, p := range s.st.days {
			if p.users.rows() == 0 {
				t.Errorf("round %d: day %d has no user rollup", round, p.day)
			}
		}
		s.mu.RUnlock()
		checkAll(t, s, m.Events(), g)
		storetest.CheckClientNames(t, s, m)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	inline, refs := snapshotTables(t, dir)
	users := 0
	for id := range refs {
		if id.kind == frameUsers {
			users++
		}
	}
	for id := range inline {
		if id.kind == frameUsers {
			users++
		}
	}
	if users == 0 {
		t.Error("the snapshot written after the upgrade has no user rollup")
	}
}
