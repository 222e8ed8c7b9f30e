package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

var everything = apiusage.Interval{
	Start: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
	End:   time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
}

// checkAll compares s with the events on a fixed set of queries that together
// see every counter of every row, and on random ones.
func checkAll(tb testing.TB, s apiusage.Store, events []apiusage.Event, g *storetest.Gen) {
	tb.Helper()
	all := []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimClient, apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod}
	storetest.CheckQuery(tb, s, events, apiusage.Query{Interval: everything, Granularity: apiusage.GranularityDay, GroupBy: all})
	storetest.CheckQuery(tb, s, events, apiusage.Query{Interval: everything, Granularity: apiusage.GranularityMonth, GroupBy: all[:2]})
	for range 30 {
		storetest.CheckQuery(tb, s, events, g.Query())
	}
}

// copyDir copies the files of a store's directory as they are on disk now:
// what a crash of the process (not of the machine) would leave, since every
// acknowledged record has been written and fsynced. A background checkpoint
// may rename and remove files meanwhile; the copy is retried until the
// listing did not change while it was taken.
func copyDir(tb testing.TB, src string) string {
	tb.Helper()
	list := func() []string {
		entries, err := os.ReadDir(src)
		if err != nil {
			tb.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			if e.Name() != "LOCK" {
				names = append(names, e.Name())
			}
		}
		return names
	}
	for range 1000 {
		dst := tb.TempDir()
		before := list()
		ok := true
		for _, name := range before {
			data, err := os.ReadFile(filepath.Join(src, name))
			if os.IsNotExist(err) {
				ok = false
				break
			}
			if err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, name), data, 0o600); err != nil {
				tb.Fatal(err)
			}
		}
		if ok && slices.Equal(before, list()) {
			return dst
		}
		time.Sleep(time.Millisecond)
	}
	tb.Fatal("the directory kept changing")
	return ""
}

func files(tb testing.TB, dir, prefix string) []string {
	tb.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, prefix+"*"))
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(matches)
	return matches
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(10)
	var m storetest.Model
	s := openTest(t, dir, Options{})
	storetest.RandomBatches(t, s, &m, g, 10, 400)
	keyed := apiusage.Batch{IdempotencyKey: "remember-me", Events: g.Events(20)}
	keyed.Events[0].ID = "remembered-id"
	storetest.AppendBatch(t, s, &m, keyed)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if segs := files(t, dir, walPrefix); len(segs) != 0 {
		t.Errorf("WAL segments after Close = %v, want none: the final snapshot covers them", segs)
	}

	for round := range 2 {
		s = openTest(t, dir, Options{})
		checkAll(t, s, m.Events(), g)
		storetest.CheckClientNames(t, s, &m)
		if round == 0 {
			// Keys and ids are remembered across the restart.
			storetest.AppendBatch(t, s, &m, apiusage.Batch{IdempotencyKey: "remember-me", Events: g.Events(3)})
			again := apiusage.Batch{Events: []apiusage.Event{keyed.Events[0]}}
			if r := storetest.AppendBatch(t, s, &m, again); r.Duplicates != 1 {
				t.Fatalf("an id stored before the restart: receipt %+v, want 1 duplicate", r)
			}
			storetest.RandomBatches(t, s, &m, g, 3, 100)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// TestTornTail cuts the WAL at every record boundary and inside records, as
// a crash in the middle of a write would, and flips bytes in the last
// record: the store opens with exactly the batches whose records are whole.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(11)
	var m storetest.Model
	s := openTest(t, dir, Options{CheckpointBytes: 1 << 30})
	var ends []int64 // WAL size after each batch
	var counted []int
	wal := filepath.Join(dir, walName(0))
	for range 12 {
		storetest.RandomBatches(t, s, &m, g, 1, 60)
		st, err := os.Stat(wal)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, st.Size())
		counted = append(counted, len(m.Events()))
	}
	crashed := copyDir(t, dir)
	data, err := os.ReadFile(filepath.Join(crashed, walName(0)))
	if err != nil {
		t.Fatal(err)
	}

	// want returns how many events the batches whose records end at or
	// before size counted.
	want := func(size int64) []apiusage.Event {
		n := 0
		for i, end := range ends {
			if end <= size {
				n = counted[i]
			}
		}
		return m.Events()[:n]
	}
	var cuts []int64
	prev := int64(0)
	for _, end := range ends {
		if end == prev {
			continue // a batch that wrote nothing: all its ids seen before
		}
		cuts = append(cuts, prev+1, prev+frameHeader-1, prev+frameHeader+1, (prev+end)/2, end-1, end)
		prev = end
	}
	for _, cut := range cuts {
		t.Run(fmt.Sprintf("cut at %d", cut), func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, walName(0)), data[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			s := openTest(t, d, Options{})
			events := want(cut)
			checkAll(t, s, events, storetest.NewGen(uint64(cut)))
			// The store goes on from the cut: what it appends now is kept.
			more := apiusage.Batch{Events: g.Events(10)}
			if _, err := s.Append(context.Background(), more); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, d, Options{})
			checkAll(t, s, append(slices.Clone(events), more.Events...), storetest.NewGen(uint64(cut)))
		})
	}
	for _, back := range []int64{1, 5, 20} {
		t.Run(fmt.Sprintf("flipped byte %d from the end", back), func(t *testing.T) {
			d := t.TempDir()
			bad := slices.Clone(data)
			bad[len(bad)-int(back)] ^= 0x40
			if err := os.WriteFile(filepath.Join(d, walName(0)), bad, 0o600); err != nil {
				t.Fatal(err)
			}
			s := openTest(t, d, Options{})
			checkAll(t, s, want(int64(len(data)-1)), storetest.NewGen(uint64(back)))
		})
	}
	t.Run("zeros after the last record", func(t *testing.T) {
		d := t.TempDir()
		padded := append(slices.Clone(data), make([]byte, 4096)...)
		if err := os.WriteFile(filepath.Join(d, walName(0)), padded, 0o600); err != nil {
			t.Fatal(err)
		}
		s := openTest(t, d, Options{})
		checkAll(t, s, m.Events(), storetest.NewGen(99))
	})
}

// TestCorruptionBeforeTheEnd refuses to open a WAL damaged in a segment
// that is not the last: that is not a torn write, and dropping what follows
// would lose acknowledged batches.
func TestCorruptionBeforeTheEnd(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(12)
	var m storetest.Model
	s := openTest(t, dir, Options{CheckpointBytes: 1 << 30})
	storetest.RandomBatches(t, s, &m, g, 3, 50)
	crashed := copyDir(t, dir)
	// A later segment makes segment 0 one that must be whole.
	if err := os.WriteFile(filepath.Join(crashed, walName(1)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(crashed, walName(0))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[frameHeader+3] ^= 1
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(crashed, Options{}); err == nil {
		s.Close()
		t.Fatal("Open with a corrupt record in an older segment: no error, want one")
	}
}

func TestCheckpointThenReopen(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(13)
	var m storetest.Model
	reg := prometheus.NewRegistry()
	s := openTest(t, dir, Options{CheckpointBytes: 8 << 10, Registerer: reg})
	storetest.RandomBatches(t, s, &m, g, 40, 200)
	checkAll(t, s, m.Events(), g)

	// A crash now: whatever snapshot and segments are on disk.
	crashed := copyDir(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := histogramCount(t, reg, "apiusage_embedded_checkpoint_seconds"); n < 3 {
		t.Errorf("checkpoints written = %d, want at least 3 with an 8 KiB bound", n)
	}
	if snaps := files(t, dir, snapPrefix); len(snaps) != 1 {
		t.Errorf("snapshots after Close: %v, want one", snaps)
	}
	for _, seg := range files(t, dir, walPrefix) {
		if st, err := os.Stat(seg); err != nil || st.Size() != 0 {
			t.Errorf("WAL segment after Close: %s (%v), want none or an empty one", seg, err)
		}
	}
	// The crashed copy first: appending to the other advances the model.
	for _, d := range []string{crashed, dir} {
		s := openTest(t, d, Options{CheckpointBytes: 8 << 10})
		checkAll(t, s, m.Events(), g)
		storetest.CheckClientNames(t, s, &m)
		if d == dir {
			storetest.RandomBatches(t, s, &m, g, 5, 100)
			checkAll(t, s, m.Events(), g)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, d, Options{})
		checkAll(t, s, m.Events(), g)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func histogramCount(tb testing.TB, reg *prometheus.Registry, name string) uint64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	tb.Fatalf("no metric %s", name)
	return 0
}

// clock is a settable clock for the deduplication window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func TestDedupWindow(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const window = time.Hour
	g := storetest.NewGen(14)
	batch := apiusage.Batch{IdempotencyKey: "k", Events: g.Events(5)}
	for i := range batch.Events {
		batch.Events[i].ID = fmt.Sprintf("id-%d", i)
	}
	idsOnly := apiusage.Batch{Events: batch.Events}
	first := apiusage.Receipt{Accepted: 5}

	cases := []struct {
		name string
		// restart: how the store is reopened between the first Append and
		// the later ones: not at all, after Close (a snapshot), or after a
		// crash (the WAL).
		restart string
		at      time.Duration
		// want are the receipts of the batch again, then of its events
		// again without the key.
		wantKeyed, wantIDs apiusage.Receipt
	}{
		{"within the window", "", window - time.Nanosecond, apiusage.Receipt{Accepted: 5, Replayed: true}, apiusage.Receipt{Accepted: 5, Duplicates: 5}},
		{"at the end of the window", "", window, first, apiusage.Receipt{Accepted: 5, Duplicates: 5}},
		{"long after", "", 30 * window, first, apiusage.Receipt{Accepted: 5, Duplicates: 5}},
		{"within the window after Close", "close", window - time.Nanosecond, apiusage.Receipt{Accepted: 5, Replayed: true}, apiusage.Receipt{Accepted: 5, Duplicates: 5}},
		{"after the window after Close", "close", window, first, apiusage.Receipt{Accepted: 5, Duplicates: 5}},
		{"within the window after a crash", "crash", window - time.Nanosecond, apiusage.Receipt{Accepted: 5, Replayed: true}, apiusage.Receipt{Accepted: 5, Duplicates: 5}},
		{"after the window after a crash", "crash", window, first, apiusage.Receipt{Accepted: 5, Duplicates: 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &clock{t: t0}
			opts := Options{Now: clk.Now, DedupWindow: window}
			dir := t.TempDir()
			s := openTest(t, dir, opts)
			mustAppend(t, s, batch, first)
			clk.Set(t0.Add(window / 2))
			mustAppend(t, s, apiusage.Batch{IdempotencyKey: "k"}, apiusage.Receipt{Accepted: 5, Replayed: true})
			switch c.restart {
			case "close":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			case "crash":
				dir = copyDir(t, dir)
			}
			clk.Set(t0.Add(c.at))
			if c.restart != "" {
				s = openTest(t, dir, opts)
			}
			mustAppend(t, s, batch, c.wantKeyed)
			// When the key was forgotten the batch was stored again, and
			// its ids are new again; either way they are remembered now.
			mustAppend(t, s, idsOnly, c.wantIDs)
			want := 5
			if !c.wantKeyed.Replayed {
				want = 10
			}
			rows, err := s.Query(context.Background(), apiusage.Query{Interval: everything})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Counts.Requests != int64(want) {
				t.Fatalf("requests = %v, want %d", rows, want)
			}
		})
	}
}

func mustAppend(tb testing.TB, s apiusage.Store, b apiusage.Batch, want apiusage.Receipt) {
	tb.Helper()
	got, err := s.Append(context.Background(), b)
	if err != nil {
		tb.Fatal(err)
	}
	if got != want {
		tb.Fatalf("Append(key %q, %d events) = %+v, want %+v", b.IdempotencyKey, len(b.Events), got, want)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	ctx := context.Background()
	if _, err := s.Append(ctx, apiusage.Batch{}); apiusage.ErrorCode(err) != apiusage.CodeUnavailable {
		t.Errorf("Append after Close: %v, want %s", err, apiusage.CodeUnavailable)
	}
	if _, err := s.Query(ctx, apiusage.Query{Interval: everything}); apiusage.ErrorCode(err) != apiusage.CodeUnavailable {
		t.Errorf("Query after Close: %v, want %s", err, apiusage.CodeUnavailable)
	}
}

func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, Options{})
	s, err := Open(dir, Options{})
	if err == nil {
		s.Close()
		t.Fatal("a second Open of a directory in use: no error, want one")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error = %v, want it to say the directory is in use", err)
	}
}

// appendRecords opens a store in a new directory, never to checkpoint, and
// appends batches of n events of seed's generator to it one at a time, so
// that each is a WAL record of its own. It returns the directory, the store,
// still open, and a copy of the directory as a crash would leave it.
func appendRecords(t *testing.T, seed uint64, batches, n int) (dir string, s *Store, crashed string) {
	t.Helper()
	dir = t.TempDir()
	g := storetest.NewGen(seed)
	s = openTest(t, dir, Options{CheckpointBytes: 1 << 30})
	for range batches {
		mustAppend(t, s, apiusage.Batch{Events: g.Events(n)}, apiusage.Receipt{Accepted: n})
	}
	return dir, s, copyDir(t, dir)
}

// TestRecoveredLog checks the "recovered" line Open logs: what it read, as
// an operator restarting after a crash sees it.
func TestRecoveredLog(t *testing.T) {
	const batches = 7
	dir, s, crashed := appendRecords(t, 14, batches, 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wal, err := os.Stat(filepath.Join(crashed, walName(0)))
	if err != nil {
		t.Fatal(err)
	}
	snaps := files(t, dir, snapPrefix)
	if len(snaps) != 1 {
		t.Fatalf("snapshots after Close: %v, want one", snaps)
	}
	snap, err := os.Stat(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want map[string]float64
	}{
		{"after a crash", crashed, map[string]float64{
			"snapshot_bytes": 0, "wal_segments": 1, "wal_bytes": float64(wal.Size()), "wal_records": batches,
		}},
		{"after Close", dir, map[string]float64{
			"snapshot_bytes": float64(snap.Size()), "wal_segments": 0, "wal_bytes": 0, "wal_records": 0,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			s, err := Open(tt.dir, Options{Logger: slog.New(slog.NewJSONHandler(&out, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var line map[string]any
			for l := range strings.Lines(out.String()) {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatal(err)
				}
				if line["msg"] == "recovered" {
					break
				}
				line = nil
			}
			if line == nil {
				t.Fatalf("no \"recovered\" line in the log:\n%s", out.String())
			}
			for k, want := range tt.want {
				if got, ok := line[k].(float64); !ok || got != want {
					t.Errorf("%s = %v, want %v", k, line[k], want)
				}
			}
			for _, k := range []string{"snapshot_ms", "replay_ms", "freeze_ms", "total_ms"} {
				if _, ok := line[k].(float64); !ok {
					t.Errorf("%s = %v, want a number", k, line[k])
				}
			}
		})
	}
}

// TestReplayBadRecord damages one record of the WAL, keeping its checksum
// good, so that it decodes wrong after the batches before it (in its
// record and the records before) were handed over to be applied: Open
// fails, wherever the record is, and leaves nothing running (the race
// detector watches the replay's two goroutines).
func TestReplayBadRecord(t *testing.T) {
	const batches = 20
	_, _, crashed := appendRecords(t, 15, batches, 50)
	data, err := os.ReadFile(filepath.Join(crashed, walName(0)))
	if err != nil {
		t.Fatal(err)
	}
	// Where each record's frame starts.
	var starts []int
	for rest := data; len(rest) > 0; {
		starts = append(starts, len(data)-len(rest))
		var err error
		if _, rest, err = nextFrame(rest); err != nil {
			t.Fatal(err)
		}
	}
	if len(starts) != batches {
		t.Fatalf("%d records, want %d", len(starts), batches)
	}
	tests := []struct {
		name   string
		record int
	}{
		{"the first", 0},
		{"one in the middle", batches / 2},
		{"the last", batches - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := slices.Clone(data)
			start := starts[tt.record]
			end := len(bad)
			if tt.record+1 < len(starts) {
				end = starts[tt.record+1]
			}
			// The record's last byte ends its sections (secEnd): make it
			// an unknown section, after its batch was decoded.
			bad[end-1] = 7
			payload := bad[start+frameHeader : end]
			binary.LittleEndian.PutUint32(bad[start+4:], crc32.Checksum(payload, castagnoli))
			dst := t.TempDir()
			if err := os.WriteFile(filepath.Join(dst, walName(0)), bad, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dst, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open with a record that does not decode: no error, want one")
			}
			if want := fmt.Sprintf("record at offset %d", start); !strings.Contains(err.Error(), want) {
				t.Errorf("Open: %v, want an error about the %s", err, want)
			}
		})
	}
}
