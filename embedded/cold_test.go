package embedded

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// coldFiles returns the sizes of the cold files in dir, by number.
func coldFiles(tb testing.TB, dir string) map[uint64]int64 {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	files := map[uint64]int64{}
	for _, e := range entries {
		if n, ok := parseName(e.Name(), coldPrefix, coldSuffix); ok {
			info, err := e.Info()
			if err != nil {
				tb.Fatal(err)
			}
			files[n] = info.Size()
		}
	}
	return files
}

// coldLive returns the bytes of each cold file that s's packed tables refer
// to, checking that every packed table's chunks lie within its range of
// its file.
func coldLive(tb testing.TB, s *Store) map[uint64]int64 {
	tb.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	live := map[uint64]int64{}
	for _, p := range s.st.days {
		for pt := range p.packable {
			t := pt.t
			if t.packed == nil {
				continue
			}
			src := t.packedSrc
			if src == nil {
				tb.Fatal("a packed table without its file")
			}
			if src.coldSeg == 0 {
				// Read from a snapshot: it moves to a cold file at the
				// next checkpoint.
				continue
			}
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(src.b)))
			for _, c := range t.packed {
				at := uintptr(unsafe.Pointer(unsafe.SliceData(c))) - lo
				if at < uintptr(t.packedAt.lo) || at+uintptr(len(c)) > uintptr(t.packedAt.hi) {
					tb.Fatal("a packed chunk outside its table's range of its cold file")
				}
			}
			live[src.coldSeg] += t.packedAt.hi - t.packedAt.lo
		}
	}
	return live
}

// TestColdFiles follows packed hours through cold files: checkpoints write
// what they pack to a cold file and snapshots refer to it, so that they
// stay small; late events unpack hours, and a cold file mostly unpacked
// has its live hours moved on and is removed; a restart reads the hours
// where the snapshot says, and removes the cold files it does not name.
func TestColdFiles(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(41)
	var m storetest.Model
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := packingStore(t, dir, g, &m, end, 12, 6000, 50)
	if packed, all := tableCounts(s); packed == 0 {
		t.Fatalf("no hourly table packed of %d", all)
	}
	checkAll(t, s, m.Events(), g)
	// Late events into most hours of every packed day (hours 0 to 14)
	// unpack them, in one batch: the cold files that held them are then
	// mostly dead.
	var late []apiusage.Event
	for d := 3; d <= 12; d++ {
		day := end.Add(-time.Duration(d) * 24 * time.Hour)
		for h := range 15 {
			e := g.Events(1)[0]
			e.Time = day.Add(time.Duration(h)*time.Hour + time.Minute)
			late = append(late, e)
		}
	}
	storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: late})
	// Then events in the newest hour, for checkpoints to follow.
	for range 100 {
		storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: daysOfEvents(g, end, 0, 20)})
		time.Sleep(time.Millisecond)
	}
	checkAll(t, s, m.Events(), g)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A cold file no snapshot names (a checkpoint's that did not finish).
	stray := filepath.Join(dir, coldName(1<<40))
	if err := os.WriteFile(stray, []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, Options{CheckpointBytes: 4 << 10})
	if packed, cold := coldCounts(s); packed != cold || cold == 0 {
		t.Errorf("after a restart %d of %d packable tables of cold days are packed, want all", packed, cold)
	}
	checkAll(t, s, m.Events(), g)
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("a cold file no snapshot names is still there after a restart (%v)", err)
	}
	files, live := coldFiles(t, dir), coldLive(t, s)
	if len(files) == 0 {
		t.Fatal("no cold file")
	}
	for n, size := range files {
		if live[n] == 0 {
			t.Errorf("%s: no packed table refers to it, and it is still there", coldName(n))
		}
		if 2*live[n] < size-64 { // the header is not live
			t.Errorf("%s: %d live bytes of %d, want at least half", coldName(n), live[n], size)
		}
	}
	for n := range live {
		if _, ok := files[n]; !ok {
			t.Errorf("packed tables refer to %s, which is gone", coldName(n))
		}
	}
	// The snapshot refers to every hour and user rollup in a cold file,
	// and holds no row of one.
	inline, refs := snapshotTables(t, dir)
	var inCold, users int
	s.mu.RLock()
	for _, p := range s.st.days {
		for pt := range p.packable {
			if pt.t.packed == nil || pt.t.packedSrc.coldSeg == 0 {
				continue
			}
			inCold++
			if pt.kind == frameUsers {
				users++
			}
			id := snapTableID{pt.kind, pt.hour}
			if !refs[id] || inline[id] {
				t.Errorf("%c %d is in a cold file: the snapshot refers to it %v, holds its rows %v", pt.kind, pt.hour, refs[id], inline[id])
			}
		}
	}
	s.mu.RUnlock()
	if users == 0 || len(refs) != inCold {
		t.Errorf("the snapshot refers to %d tables, and %d are in cold files, %d of them user rollups", len(refs), inCold, users)
	}
}

// coldCounts reports how many hourly tables and user rollups of days before
// the two newest s holds, and how many of them are packed.
func coldCounts(s *Store) (packed, cold int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	newest := s.st.days[len(s.st.days)-1].day
	for _, p := range s.st.days {
		for pt := range p.packable {
			if p.day >= newest-1 {
				continue
			}
			cold++
			if pt.t.packed != nil {
				packed++
			}
		}
	}
	return packed, cold
}

// snapTableID names a packable table in a snapshot: the kind of its rows'
// frames ('T' or 'U') and its hour (or day).
type snapTableID struct {
	kind byte
	hour int64
}

// snapshotTables returns the hours and user rollups whose rows the newest
// snapshot in dir holds ('T' and 'U' frames) and those it refers to a cold
// file for ('P' and 'V' frames).
func snapshotTables(tb testing.TB, dir string) (inline, refs map[snapTableID]bool) {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var newest string
	for _, e := range entries {
		if _, ok := parseName(e.Name(), snapPrefix, snapSuffix); ok {
			newest = e.Name()
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, newest))
	if err != nil {
		tb.Fatal(err)
	}
	inline, refs = map[snapTableID]bool{}, map[snapTableID]bool{}
	for len(data) > 0 {
		var payload []byte
		if payload, data, err = nextFrame(data); err != nil {
			tb.Fatal(err)
		}
		d := decoder{b: payload}
		switch kind := d.byte(); kind {
		case frameTable, frameUsers:
			inline[snapTableID{kind, d.varint()}] = true
		case frameRef, frameUsersRef:
			d.uvarint()
			refs[snapTableID{rowsFrame[kind], d.varint()}] = true
		}
	}
	return inline, refs
}

// TestColdDamage checks that a snapshot whose reference cannot be followed
// (its cold file gone, or damaged) refuses to open with an error that
// names the file, rather than open without the hours.
func TestColdDamage(t *testing.T) {
	dir := t.TempDir()
	var m storetest.Model
	s := packingStore(t, dir, storetest.NewGen(43), &m, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 6, 2000, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := coldFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no cold file")
	}
	for _, tc := range []struct {
		name   string
		damage func(path string, data []byte) error
	}{
		{"removed", func(path string, _ []byte) error { return os.Remove(path) }},
		{"cut short", func(path string, data []byte) error { return os.WriteFile(path, data[:len(data)/2], 0o600) }},
		{"a byte changed", func(path string, data []byte) error {
			data[len(data)-3] ^= 0x40
			return os.WriteFile(path, data, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := copyDir(t, dir)
			for n := range files {
				path := filepath.Join(cp, coldName(n))
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := tc.damage(path, data); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(cp, Options{})
			if err == nil {
				s.Close()
				t.Fatal("opened a store whose cold files are damaged")
			}
			if !strings.Contains(err.Error(), coldPrefix) {
				t.Errorf("error %q does not name the cold file", err)
			}
		})
	}
}

// besideCounts reports how many packable tables of s are packed, and how
// many of those hold rows beside their chunks (late events').
func besideCounts(s *Store) (packed, beside int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.st.days {
		for pt := range p.packable {
			if pt.t.packed == nil {
				continue
			}
			packed++
			if len(pt.t.keys) > 0 {
				beside++
			}
		}
	}
	return packed, beside
}

// TestLateEventsBesidePackedChunks follows a backfill into packed hours:
// late events add rows beside the chunks rather than unpack the hours,
// queries count both, a restart after a crash replays them beside the
// chunks again, and a checkpoint, which enough of them start, merges them
// into new chunks.
func TestLateEventsBesidePackedChunks(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(43)
	var m storetest.Model
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := packingStore(t, dir, g, &m, end, 12, 6000, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lateBatch := func(days, perHour int) []apiusage.Event {
		var late []apiusage.Event
		for d := 3; d < 3+days; d++ {
			day := end.Add(-time.Duration(d) * 24 * time.Hour)
			for h := range 24 {
				for i, e := range g.Events(perHour) {
					e.Time = day.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Minute)
					late = append(late, e)
				}
			}
		}
		return late
	}
	// packRows is set before any Append, which the writer receives.
	open := func(dir string, packRows int) *Store {
		s := openTest(t, dir, Options{CheckpointBytes: 1 << 40})
		s.packRows = packRows
		return s
	}

	// With no checkpoint to merge them, late events stay beside the chunks.
	base := copyDir(t, dir)
	var mb storetest.Model // base's events
	mb.Append(apiusage.Batch{Events: slices.Clone(m.Events())})
	s = open(dir, 1<<30)
	packedBefore, _ := besideCounts(s)
	if packedBefore == 0 {
		t.Fatal("no table packed")
	}
	storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: lateBatch(9, 3)})
	packed, beside := besideCounts(s)
	if packed < packedBefore || beside == 0 {
		t.Fatalf("after late events: %d tables packed (%d before), %d with rows beside; want none unpacked, some beside", packed, packedBefore, beside)
	}
	checkAll(t, s, m.Events(), g)

	// A crash: the WAL's late events go beside the chunks again.
	crashed := open(copyDir(t, dir), 1<<30)
	if p, b := besideCounts(crashed); p < packedBefore || b == 0 {
		t.Errorf("after a crash: %d tables packed (%d before), %d with rows beside; want none unpacked, some beside", p, packedBefore, b)
	}
	checkAll(t, crashed, m.Events(), g)

	// A checkpoint merges them: Close takes one.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	restarted := open(dir, 1<<30)
	if p, b := besideCounts(restarted); p < packedBefore || b != 0 {
		t.Errorf("after Close and Open: %d tables packed (%d before), %d with rows beside; want none unpacked, none beside", p, packedBefore, b)
	}
	checkAll(t, restarted, m.Events(), g)

	// Enough rows beside chunks start a checkpoint, which merges them.
	s = open(base, 10)
	storetest.AppendBatch(t, s, &mb, apiusage.Batch{Events: lateBatch(2, 1)})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p, b := besideCounts(s)
		if b == 0 {
			if p < packedBefore {
				t.Errorf("after the checkpoint %d tables are packed, %d before", p, packedBefore)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint merged the rows beside chunks: %d of %d packed tables still have some", b, p)
		}
	}
	checkAll(t, s, mb.Events(), g)
}
