package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// tableCounts reports how many hourly tables s holds, and how many of them
// are packed.
func tableCounts(s *Store) (packed, all int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.st.days {
		for _, t := range p.hours {
			if t == nil {
				continue
			}
			all++
			if t.packed != nil {
				packed++
			}
		}
	}
	return packed, all
}

// daysOfEvents returns n events of g spread over the hours of days days
// ending at end, in time order, so that the older days go cold.
func daysOfEvents(g *storetest.Gen, end time.Time, days, n int) []apiusage.Event {
	events := g.Events(n)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	step := time.Duration(days) * 24 * time.Hour / time.Duration(n)
	for i := range events {
		events[i].Time = start.Add(time.Duration(i) * step)
	}
	return events
}

// packingStore opens a store in dir that checkpoints often, packing
// (with packRows, unless 0) soon, and appends n events of g, spread over
// days days ending at end, 100 a batch, with turns between batches for the
// writer to take checkpoints back.
func packingStore(t *testing.T, dir string, g *storetest.Gen, m *storetest.Model, end time.Time, days, n, packRows int) *Store {
	t.Helper()
	s := openTest(t, dir, Options{CheckpointBytes: 4 << 10})
	if packRows > 0 {
		s.packRows = packRows
	}
	events := daysOfEvents(g, end, days, n)
	for i := 0; i < len(events); i += 100 {
		storetest.AppendBatch(t, s, m, apiusage.Batch{Events: events[i : i+100]})
		time.Sleep(100 * time.Microsecond)
	}
	return s
}

// TestPackedTables follows hourly tables through packing: checkpoints pack
// the cold ones, which answer exactly as before; late events unpack them;
// a restart keeps them packed as the snapshot holds them.
func TestPackedTables(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(21)
	var m storetest.Model
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := packingStore(t, dir, g, &m, end, 12, 6000, 0)
	// Packing follows a checkpoint the writer has taken back; a few more
	// small batches in the newest hour give it the turns to.
	for range 200 {
		if packed, _ := tableCounts(s); packed > 0 {
			break
		}
		storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: daysOfEvents(g, end, 0, 5)})
		time.Sleep(time.Millisecond)
	}
	packed, all := tableCounts(s)
	if packed == 0 {
		t.Fatalf("no hourly table packed of %d after many checkpoints", all)
	}
	checkAll(t, s, m.Events(), g)

	// Late events into the oldest (packed) hours unpack them.
	late := daysOfEvents(g, end.Add(-10*24*time.Hour), 2, 300)
	storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: late})
	checkAll(t, s, m.Events(), g)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart every hourly table of the days before the two newest
	// is packed, as the snapshot wrote it or as it was in its cold file.
	s = openTest(t, dir, Options{CheckpointBytes: 4 << 10})
	if packed, cold := coldCounts(s); packed != cold || cold == 0 {
		t.Errorf("after a restart %d of %d packable tables of cold days are packed, want all", packed, cold)
	}
	checkAll(t, s, m.Events(), g)
	storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: daysOfEvents(g, end.Add(-5*24*time.Hour), 3, 300)})
	checkAll(t, s, m.Events(), g)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{})
	checkAll(t, s, m.Events(), g)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeRows checks the chunk codec: what appendRows writes decodes to
// the same rows, with every column or without those a rollup does not have,
// and a chunk naming an id past the dictionary, or cut short, or with bytes
// left over, is an error.
func TestDecodeRows(t *testing.T) {
	keys := []key{{1, 2, 3, 4, 5}, {0, 200, 70000, 1, 0}, {3, 1, 0, 399, 5}}
	cnts := []cnt{{1, 1, 0, 0, 0, 0}, {300, 100, 50, 120, 30, 7}, {1 << 31, 0, 0, 1 << 31, 0, 1 << 30}}
	limits := [numFields]uint32{4, 201, 70001, 400, 6, 1}
	for _, omit := range []omitted{0, slimOmits, usersOmits} {
		chunk := packedChunk(appendRows(nil, keys, cnts, omit))
		var cols columns
		gotK, gotC, err := decodeRows(chunk, omit, &limits, &cols, []key{{9, 9, 9, 9, 9}}, nil)
		if err != nil {
			t.Fatalf("omit=%b: %v", omit, err)
		}
		wantK := append([]key{{9, 9, 9, 9, 9}}, keys...)
		for i := range wantK[1:] {
			for f := range fName {
				if omit&(1<<f) != 0 {
					*fieldPtr(&wantK[1+i], f) = 0
				}
			}
		}
		if !slices.Equal(gotK, wantK) || !slices.Equal(gotC, cnts) {
			t.Errorf("omit=%b: decoded %v %v, want %v %v", omit, gotK, gotC, wantK, cnts)
		}
		if n, org, err := checkRows(chunk, omit, &limits, &cols); err != nil || n != len(keys) || org != manyOrgs {
			t.Errorf("checkRows = %d, %d, %v; want %d rows of several organizations", n, org, err, len(keys))
		}
		one := packedChunk(appendRows(nil, keys[1:2], cnts[1:2], omit))
		if n, org, err := checkRows(one, omit, &limits, &cols); err != nil || n != 1 || org != keys[1].org {
			t.Errorf("checkRows of one row = %d, %d, %v; want 1 row of organization %d", n, org, err, keys[1].org)
		}
		// The smallest row: a byte a column, two of counters.
		small := packedChunk(appendRows(nil, keys[:1], []cnt{{total: 1}}, omit))
		if n, _, err := checkRows(small, omit, &limits, &cols); err != nil || n != 1 {
			t.Errorf("omit=%b: checkRows of the smallest row = %d, %v; want 1 row", omit, n, err)
		}
		tight := limits
		tight[fOrg] = 3
		bad := map[string]packedChunk{
			"id past the dictionary": chunk,
			"cut short":              chunk[:len(chunk)-1],
			"bytes left over":        append(bytes.Clone(chunk), 0),
			"count too large":        append(packedChunk{0xff, 0x7f}, chunk[1:]...),
		}
		for name, c := range bad {
			lim := &limits
			if name == "id past the dictionary" {
				lim = &tight
			}
			k, cs, err := decodeRows(c, omit, lim, &cols, nil, nil)
			if !errors.Is(err, errCorrupt) {
				t.Errorf("omit=%b, %s: err %v, want errCorrupt", omit, name, err)
			}
			if len(k) != 0 || len(cs) != 0 {
				t.Errorf("omit=%b, %s: %d rows kept of a bad chunk", omit, name, len(k))
			}
			if _, _, err := checkRows(c, omit, lim, &cols); !errors.Is(err, errCorrupt) {
				t.Errorf("checkRows, omit=%b, %s: err %v, want errCorrupt", omit, name, err)
			}
		}
	}
}

// TestPackedSnapshotDamage rewrites a snapshot's packed table with an id
// past the dictionary, under a valid checksum: the store refuses to open
// rather than keep a table a query would trip on.
func TestPackedSnapshotDamage(t *testing.T) {
	dir := t.TempDir()
	g := storetest.NewGen(22)
	var m storetest.Model
	s := openTest(t, dir, Options{})
	storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: daysOfEvents(g, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 3, 200)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snaps := files(t, dir, snapPrefix)
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	data, err := os.ReadFile(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	out, found := rewriteFrames(t, data, func(payload []byte) []byte {
		if payload[0] != frameTable {
			return payload
		}
		d := decoder{b: payload[1:]}
		hour := d.varint()
		n := d.uvarint()
		// The first org id becomes one no dictionary holds.
		p := putVarint([]byte{frameTable}, hour)
		p = putUvarint(p, n)
		p = putUvarint(p, 1<<20)
		d.uvarint() // the org id replaced
		return append(p, d.b...)
	})
	if !found {
		t.Fatal("no table frame in the snapshot")
	}
	if err := os.WriteFile(snaps[0], out, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("Open accepted a snapshot whose table names an unknown organization id")
	}
}

// rewriteFrames returns data, a file of frames, with each payload replaced
// by fn's and its checksum made anew; found tells whether fn changed one.
func rewriteFrames(tb testing.TB, data []byte, fn func(payload []byte) []byte) (out []byte, found bool) {
	tb.Helper()
	r := bytes.NewReader(data)
	var buf []byte
	for {
		payload, err := readFrame(r, buf, int64(r.Len()))
		if err == io.EOF {
			return out, found
		}
		if err != nil {
			tb.Fatalf("read frame: %v", err)
		}
		p := fn(bytes.Clone(payload))
		found = found || !bytes.Equal(p, payload)
		var start int
		out, start = beginFrame(out)
		out = append(out, p...)
		out = endFrame(out, start)
	}
}

// TestPackingStartsCheckpoints checks that a checkpoint starts early to pack
// the hourly tables of days gone cold, long before the WAL reaches its bound.
func TestPackingStartsCheckpoints(t *testing.T) {
	g := storetest.NewGen(23)
	var m storetest.Model
	s := openTest(t, "", Options{CheckpointBytes: 256 << 10})
	s.packRows = 50
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	events := daysOfEvents(g, end, 12, 3000)
	for i := 0; i < len(events); i += 50 {
		storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: events[i : i+50]})
		time.Sleep(time.Millisecond) // turns for the writer to take checkpoints back
	}
	if packed, all := tableCounts(s); packed == 0 {
		t.Fatalf("no hourly table packed of %d, with the WAL far below its bound", all)
	}
	checkAll(t, s, m.Events(), g)
}

// packChunks encodes the rows of a frozen table as a checkpoint writes them
// when it packs the table: one organization a chunk.
func packChunks(keys []key, cnts []cnt, orgs []orgRange) (chunks []packedChunk, chunkOrgs []uint32) {
	for org, r := range orgChunks(orgs) {
		chunks = append(chunks, packedChunk(appendRows(nil, keys[r.lo:r.hi], cnts[r.lo:r.hi], 0)))
		chunkOrgs = append(chunkOrgs, org)
	}
	return chunks, chunkOrgs
}

// TestPackedRead packs a frozen table one organization a chunk and reads it
// back through a scope: every row for every organization, and only the
// chunks of the scope's organizations when it names some.
func TestPackedRead(t *testing.T) {
	var tb table
	for i := range 300 {
		tb.add(key{org: uint32(1 + i%3), client: uint32(i % 7), user: uint32(i), tmpl: 1, method: 1}, cnt{total: uint32(i + 1), s2: uint32(i + 1)})
	}
	var buf []uint64
	tb.install(tb.freeze(&buf))
	chunks, orgs := packChunks(tb.keys, tb.cnts, tb.orgs)
	if !slices.Equal(orgs, []uint32{1, 2, 3}) {
		t.Fatalf("chunk organizations %v, want [1 2 3]", orgs)
	}
	wantKeys, wantCnts := tb.keys, tb.cnts
	packed := table{packed: chunks, packedOrg: orgs, packedRows: len(wantKeys)}
	var rs rowScratch
	rs.limits = noLimits
	var spans []span
	for _, tc := range []struct {
		scope scope
		rows  int
	}{
		{scope{}, 300},
		{scope{orgs: []uint32{2}}, 100},
		{scope{orgs: []uint32{1, 3}}, 200},
		{scope{orgs: []uint32{4}}, 0},
	} {
		var gotK []key
		var gotC []cnt
		err := packed.read(&tc.scope, &spans, &rs, func(k []key, c []cnt) {
			gotK, gotC = append(gotK, k...), append(gotC, c...)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(gotK) != tc.rows {
			t.Errorf("scope %v: %d rows read, want %d", tc.scope.orgs, len(gotK), tc.rows)
		}
		for i, k := range gotK {
			j := slices.Index(wantKeys, k)
			if j < 0 || wantCnts[j] != gotC[i] {
				t.Errorf("scope %v: row %v %v not in the table", tc.scope.orgs, k, gotC[i])
				break
			}
		}
	}
	// Changes add rows beside the chunks, which stay packed, and reads
	// give both: a new key's row, and a second row of a key the chunks
	// hold, which readers sum.
	late := key{org: 2, client: 1, user: 1000, tmpl: 1, method: 1}
	packed.add(late, cnt{total: 1, s2: 1})
	packed.add(late, cnt{total: 2, s4: 2})
	first, firstCnt := wantKeys[0], wantCnts[0]
	packed.add(first, cnt{total: 5, s5: 5})
	if packed.packed == nil || len(packed.keys) != 2 || packed.rows() != 302 {
		t.Fatalf("after late changes: packed %v, %d rows beside, %d in all; want packed, 2 beside, 302", packed.packed != nil, len(packed.keys), packed.rows())
	}
	sums := func(sc scope) map[key]cnt {
		got := map[key]cnt{}
		err := packed.read(&sc, &spans, &rs, func(k []key, c []cnt) {
			for i := range k {
				s := got[k[i]]
				s.add(c[i])
				got[k[i]] = s
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	wantFirst := firstCnt
	wantFirst.add(cnt{total: 5, s5: 5})
	all := sums(scope{})
	if len(all) != 301 || all[late] != (cnt{total: 3, s2: 1, s4: 2}) || all[first] != wantFirst {
		t.Errorf("read after late changes: %d keys, late %+v, first %+v; want 301, {3 1 0 2 0 0}, %+v", len(all), all[late], all[first], wantFirst)
	}
	// A scope narrows what is read, never what matches: the rows beside
	// the chunks, not frozen, are read whole.
	n2 := 0
	org2 := sums(scope{orgs: []uint32{2}})
	for k := range org2 {
		if k.org == 2 {
			n2++
		}
	}
	if n2 != 101 || org2[late].total != 3 {
		t.Errorf("read of organization 2 after late changes: %d of its keys, late %+v; want 101, total 3", n2, org2[late])
	}
	// Unpacking merges them, frozen again.
	packed.unpack()
	if packed.packed != nil || len(packed.keys) != 301 || packed.tail() != 0 || packed.rows() != 301 {
		t.Errorf("unpacked: packed %v, %d rows, tail %d; want unpacked, 301 rows, tail 0", packed.packed != nil, len(packed.keys), packed.tail())
	}
	if i := slices.Index(packed.keys, first); i < 0 || packed.cnts[i] != wantFirst {
		t.Errorf("unpacked: the first key's row is not the sum of its two rows")
	}
}

// TestReadCnts holds readCnts and skipCnts to decoder.cnt: on counters
// putCnt wrote, and on random bytes, they read the same counters, or both
// refuse.
func TestReadCnts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	val := func() uint32 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return r.Uint32N(128)
		case 2:
			return r.Uint32N(1 << 20)
		}
		return r.Uint32()
	}
	// A value past 32 bits, and a mask with a seventh counter.
	for _, b := range [][]byte{binary.AppendUvarint([]byte{1}, 1<<32), {0x41, 1, 1}} {
		if _, ok := readCnts(b, make([]cnt, 1)); ok {
			t.Errorf("readCnts accepts %x", b)
		}
		if _, ok := skipCnts(b, 1); ok {
			t.Errorf("skipCnts accepts %x", b)
		}
	}
	for round := range 2000 {
		var b []byte
		n := 1 + r.IntN(8)
		if round%2 == 0 {
			for range n {
				b = putCnt(b, cnt{val(), val(), val(), val(), val(), val()})
			}
		} else {
			b = make([]byte, r.IntN(40))
			for i := range b {
				b[i] = byte(r.IntN(256))
				if r.IntN(2) == 0 {
					b[i] &= 0x3f // a valid mask, more often
				}
			}
		}
		d := decoder{b: b}
		want := make([]cnt, n)
		for i := range want {
			want[i] = d.cnt()
		}
		got := make([]cnt, n)
		rest, ok := readCnts(b, got)
		if ok != (d.err == nil) {
			t.Fatalf("round %d: readCnts ok=%v, decoder.cnt err %v, on %x", round, ok, d.err, b)
		}
		if !ok {
			if _, ok := skipCnts(b, n); ok {
				t.Fatalf("round %d: skipCnts accepts what decoder.cnt refuses: %x", round, b)
			}
			continue
		}
		if !slices.Equal(got, want) || len(rest) != len(d.b) {
			t.Fatalf("round %d: readCnts %v (rest %d), decoder.cnt %v (rest %d)", round, got, len(rest), want, len(d.b))
		}
		if rest2, ok := skipCnts(b, n); !ok || len(rest2) != len(rest) {
			t.Fatalf("round %d: skipCnts %v, rest %d; want rest %d", round, ok, len(rest2), len(rest))
		}
	}
}

// BenchmarkReadCnts compares readCnts and skipCnts with decoder.cnt, the
// way counters were read before, on the counters of an hour of the
// benchmark's workload: mostly one request, a few hundred at most.
func BenchmarkReadCnts(b *testing.B) {
	const n = 10_000
	r := rand.New(rand.NewPCG(7, 8))
	var buf []byte
	for range n {
		total := uint32(1)
		if r.IntN(4) == 0 {
			total += r.Uint32N(300)
		}
		c := cnt{total: total, s2: total - total/10, s4: total / 10}
		buf = putCnt(buf, c)
	}
	cnts := make([]cnt, n)
	b.Run("decoder.cnt", func(b *testing.B) {
		for b.Loop() {
			d := decoder{b: buf}
			for i := range cnts {
				cnts[i] = d.cnt()
			}
			if d.err != nil {
				b.Fatal(d.err)
			}
		}
	})
	b.Run("readCnts", func(b *testing.B) {
		for b.Loop() {
			if _, ok := readCnts(buf, cnts); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("skipCnts", func(b *testing.B) {
		for b.Loop() {
			if _, ok := skipCnts(buf, n); !ok {
				b.Fatal("refused")
			}
		}
	})
}
