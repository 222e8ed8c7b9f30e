package embedded

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"
	"unsafe"

	"github.com/apiusage/apiusage"
)

// A snapshot is a sequence of frames (see codec.go), each starting with its
// kind:
//
//	'H' string "apiusage snapshot", uvarint version, uvarint segment number,
//	    varint clock (unix ns) when taken
//	'D' byte field, uvarint first id, uvarint n, n strings: dictionary
//	    entries of one field, in id order
//	'N' uvarint n, n × (uvarint client id, uvarint name id)
//	'K' uvarint n, n × (varint at, string key, uvarint accepted, uvarint dups)
//	'I' uvarint n, n × (varint at, uvarint org id, string event id)
//	'T' varint hour, uvarint n, then n org ids, n client ids, n user ids,
//	    n template ids, n method ids (uvarints, column by column, which
//	    varint-packs well), then n counters
//	'P' uvarint cold file number, varint hour, uvarint lo, uvarint hi: the
//	    hour's rows are the 'T' frames in bytes [lo, hi) of that cold file
//	    (see cold.go); since version 2, every packed hour is one
//	'S' varint day, uvarint n, then the columns of 'T' but the user's: the
//	    slim daily rollup, stored although it could be derived from the
//	    hourly one, because rebuilding it was most of the time a restart took
//	'U' varint day, then as 'T': the user rollup of the day (since
//	    version 3; Open derives it from the hours of an older snapshot)
//	'V' as 'P', with the day for the hour: the day's user rollup is the
//	    'U' frames of that range (since version 3)
//	'E' (nothing): the end; a snapshot without it is incomplete
//
// Big sections are split over several frames (maxChunk items) so
// that neither writing nor reading needs one huge buffer.
const (
	snapMagic = "apiusage snapshot"
	// 1 had packed hours as 'T' frames in the snapshot, 2 no user
	// rollups.
	snapVersion = 3
	maxChunk    = 1 << 16
)

const (
	frameHeaderKind = 'H'
	frameDict       = 'D'
	frameNames      = 'N'
	frameKeys       = 'K'
	frameIDs        = 'I'
	frameTable      = 'T'
	frameSlim       = 'S'
	frameUsers      = 'U'
	frameEnd        = 'E'
)

// snapshot is a consistent copy of the store's state, taken by the writer
// between two group commits, written by another goroutine while the writer
// goes on.
type snapshot struct {
	seg    uint64
	at     int64
	dict   [numFields][]string // ids 1 and up
	names  []nameAt
	keys   []snapKey
	ids    []fifoItem[idKey]
	tables []snapTable
	slims  []snapTable // hour is the day
	// packs are where the chunks of packed tables and of tables to pack
	// were written to the cold file, and refs the cold files the snapshot
	// refers to: filled by write.
	packs []packResult
	refs  map[uint64]bool
}

type snapKey struct {
	key     string
	at      int64
	receipt apiusage.Receipt
}

// snapTable is a table as a snapshot writes it: its rows, or its packed
// chunks. When pack is set (a frozen table, whose orgs are its directory),
// the writer encodes it one organization a chunk and tells where it wrote
// them, for the table, as of change gen, to be packed into them.
type snapTable struct {
	kind   byte  // the frame kind of its rows
	hour   int64 // or day, for a daily rollup
	keys   []key
	cnts   []cnt
	packed []packedChunk
	src    *mappedFile // packed's, kept reachable while they are written
	at     coldRange   // where packed's frames are in src, a cold file
	from   *table      // the packed table
	rows   int         // packed's rows
	ref    coldRef     // where a packed hour is, set by writeCold
	pack   *table
	gen    uint64
	orgs   []orgRange
}

// cloneState copies the state for a snapshot numbered seg. It copies no
// rollup rows: keys are append-only, so a prefix of the slice stays valid,
// and each table is marked shared so that the writer copies its counters
// before changing them (copy on write). The writer calls it between commits.
//
// It also drops the update indexes of days two or more before the newest:
// they are rebuilt if a late event arrives.
func (s *Store) cloneState(seg uint64, now int64) *snapshot {
	snap := &snapshot{seg: seg, at: now}
	all := s.dict.all()
	for f := range numFields {
		snap.dict[f] = all[f][1:s.logged[f]]
	}
	for c, n := range s.st.names {
		snap.names = append(snap.names, nameAt{client: c, name: n})
	}
	for _, it := range s.dd.keyQ.live() {
		if e, ok := s.dd.keys[it.v]; ok && e.at == it.at && s.dd.live(it.at, now) {
			snap.keys = append(snap.keys, snapKey{key: it.v, at: it.at, receipt: e.receipt})
		}
	}
	for _, it := range s.dd.idQ.live() {
		if at, ok := s.dd.ids[it.v]; ok && at == it.at && s.dd.live(it.at, now) {
			snap.ids = append(snap.ids, it)
		}
	}
	warm := s.st.warmFrom()
	for _, p := range s.st.days {
		cold := p.day < warm
		for pt := range p.packable {
			t, hour, kind := pt.t, pt.hour, pt.kind
			if t.packed != nil {
				st := snapTable{kind: kind, hour: hour, packed: t.packed, src: t.packedSrc, at: t.packedAt, from: t, rows: t.packedRows}
				if n := len(t.keys); n > 0 {
					// Rows late events added: the cold file gets
					// them merged with the chunks (see writeCold).
					st.keys, st.cnts, st.gen = t.keys[:n:n], t.cnts[:n:n], t.gen
					t.shared = true
					t.index = nil
				}
				snap.tables = append(snap.tables, st)
				continue
			}
			n := len(t.keys)
			st := snapTable{kind: kind, hour: hour, keys: t.keys[:n:n], cnts: t.cnts[:n:n]}
			t.shared = true
			if cold {
				t.index = nil
				if n > 0 && t.tail() == 0 {
					st.pack, st.gen, st.orgs = t, t.gen, t.orgs
				}
			}
			snap.tables = append(snap.tables, st)
		}
		n := len(p.slim.keys)
		snap.slims = append(snap.slims, snapTable{kind: frameSlim, hour: p.day, keys: p.slim.keys[:n:n], cnts: p.slim.cnts[:n:n]})
		p.slim.shared = true
		if cold {
			p.slim.index = nil
		}
	}
	return snap
}

// write writes the snapshot durably: to a temporary file, fsynced, renamed
// into place, and the directory fsynced, so that a crash leaves either the
// old snapshot or the whole new one; and its cold file first (see
// writeCold). It returns the snapshot's size.
func (snap *snapshot) write(dir string) (size int64, err error) {
	path := filepath.Join(dir, snapName(snap.seg))
	if snap.refs, err = snap.writeCold(dir); err != nil {
		return 0, fmt.Errorf("cold file: %w", err)
	}
	defer func() {
		// The cold file goes with a snapshot that failed, unless the
		// snapshot was renamed into place (only the directory's fsync
		// failed): then it may be the one the next Open loads.
		if _, statErr := os.Stat(path); err != nil && snap.refs[snap.seg] && os.IsNotExist(statErr) {
			os.Remove(filepath.Join(dir, coldName(snap.seg)))
		}
	}()
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	fw := newFrameWriter(f)

	fw.frame(frameHeaderKind)
	fw.buf = putString(fw.buf, snapMagic)
	fw.buf = putUvarint(fw.buf, snapVersion)
	fw.buf = putUvarint(fw.buf, snap.seg)
	fw.buf = putVarint(fw.buf, snap.at)
	if err := fw.flush(); err != nil {
		return 0, err
	}
	for f, strs := range snap.dict {
		for i := 0; i < len(strs); i += maxChunk {
			chunk := strs[i:min(i+maxChunk, len(strs))]
			fw.frame(frameDict)
			fw.buf = append(fw.buf, byte(f))
			fw.buf = putUvarint(fw.buf, uint64(i+1))
			fw.buf = putUvarint(fw.buf, uint64(len(chunk)))
			for _, s := range chunk {
				fw.buf = putString(fw.buf, s)
			}
			if err := fw.flush(); err != nil {
				return 0, err
			}
		}
	}
	for i := 0; i < len(snap.names); i += maxChunk {
		chunk := snap.names[i:min(i+maxChunk, len(snap.names))]
		fw.frame(frameNames)
		fw.buf = putUvarint(fw.buf, uint64(len(chunk)))
		for _, n := range chunk {
			fw.buf = putUvarint(fw.buf, uint64(n.client))
			fw.buf = putUvarint(fw.buf, uint64(n.name))
		}
		if err := fw.flush(); err != nil {
			return 0, err
		}
	}
	for i := 0; i < len(snap.keys); i += maxChunk {
		chunk := snap.keys[i:min(i+maxChunk, len(snap.keys))]
		fw.frame(frameKeys)
		fw.buf = putUvarint(fw.buf, uint64(len(chunk)))
		for _, k := range chunk {
			fw.buf = putVarint(fw.buf, k.at)
			fw.buf = putString(fw.buf, k.key)
			fw.buf = putUvarint(fw.buf, uint64(k.receipt.Accepted))
			fw.buf = putUvarint(fw.buf, uint64(k.receipt.Duplicates))
		}
		if err := fw.flush(); err != nil {
			return 0, err
		}
	}
	for i := 0; i < len(snap.ids); i += maxChunk {
		chunk := snap.ids[i:min(i+maxChunk, len(snap.ids))]
		fw.frame(frameIDs)
		fw.buf = putUvarint(fw.buf, uint64(len(chunk)))
		for _, it := range chunk {
			fw.buf = putVarint(fw.buf, it.at)
			fw.buf = putUvarint(fw.buf, uint64(it.v.org))
			fw.buf = putString(fw.buf, it.v.id)
		}
		if err := fw.flush(); err != nil {
			return 0, err
		}
	}
	writeTables := func(tables []snapTable) error {
		for _, t := range tables {
			if t.ref.seg != 0 {
				fw.frame(refFrame[t.kind])
				fw.buf = putUvarint(fw.buf, t.ref.seg)
				fw.buf = putVarint(fw.buf, t.hour)
				fw.buf = putUvarint(fw.buf, uint64(t.ref.lo))
				fw.buf = putUvarint(fw.buf, uint64(t.ref.hi))
				if err := fw.flush(); err != nil {
					return err
				}
				continue
			}
			if t.packed != nil {
				// writeCold gives every packed hour its cold file.
				return fmt.Errorf("hour %d: packed rows without a cold file", t.hour)
			}
			for i := 0; i < len(t.keys); i += maxChunk {
				end := min(i+maxChunk, len(t.keys))
				fw.frame(t.kind)
				fw.buf = putVarint(fw.buf, t.hour)
				fw.buf = appendRows(fw.buf, t.keys[i:end], t.cnts[i:end], omitsOf(t.kind))
				if err := fw.flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := writeTables(snap.tables); err != nil {
		return 0, err
	}
	if err := writeTables(snap.slims); err != nil {
		return 0, err
	}
	fw.frame(frameEnd)
	if err := fw.flush(); err != nil {
		return 0, err
	}
	if err := fw.w.Flush(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, err
	}
	return fw.cw.n, syncDir(dir)
}

// loadSnapshot reads a snapshot into the empty store being recovered, and
// returns the cold files it refers to. Unlike the WAL's tail, a snapshot
// must be whole: it was renamed into place only after it was fsynced, so
// damage is an error, not a crash to forgive.
func (s *Store) loadSnapshot(path string, now int64) (refs map[uint64]bool, err error) {
	// The file is mapped whole, and the packed tables keep slices of it
	// (see packed.go and mappedFile): no copy per frame. Every byte is read
	// once here, to be checked; the pages read are let go as the loader
	// moves on, so that they stay the page cache's, not the process's.
	m, err := openMapped(path)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	s.lastSnap.Store(int64(len(m.b)))
	data := m.b
	const evictEvery = 64 << 20
	evicted := 0
	colds := coldLoader{s: s, files: map[uint64]*mappedFile{}}
	defer colds.done()
	var buf []byte
	seenHeader := false
	var version uint64
	var tl *tableLoader
	defer func() {
		if tl != nil {
			tl.wait()
		}
	}()
	for {
		buf, data, err = nextFrame(data)
		if err == io.EOF || errors.Is(err, errTorn) {
			return nil, fmt.Errorf("incomplete or corrupt snapshot")
		}
		if err != nil {
			return nil, err
		}
		d := decoder{b: buf}
		kind := d.byte()
		if !seenHeader && kind != frameHeaderKind {
			return nil, fmt.Errorf("no snapshot header")
		}
		if tableFrame(kind) {
			if tl == nil {
				tl = s.startTableLoader()
			}
			if kind == frameRef || kind == frameUsersRef {
				if err := colds.load(&d, tl, kind); err != nil {
					return nil, fmt.Errorf("frame %q: %w", kind, err)
				}
			} else {
				tl.add(&tableJob{payload: d.b, kind: kind, src: m})
			}
			// Frames still being checked may lose pages too: they read
			// them back.
			if read := len(m.b) - len(data); read-evicted >= 2*evictEvery {
				m.evict(evicted, read-evictEvery)
				evicted = read - evictEvery
			}
			continue
		}
		if tl != nil {
			err := tl.wait()
			tl = nil
			if err != nil {
				return nil, fmt.Errorf("table frame: %w", err)
			}
		}
		switch kind {
		case frameHeaderKind:
			magic, v := d.string(), d.uvarint()
			if magic != snapMagic || v < 1 || v > snapVersion {
				return nil, fmt.Errorf("not a snapshot of a known version")
			}
			version = v
			d.uvarint() // the segment number, which the file name also has
			d.varint()
			seenHeader = true
		case frameDict:
			f := int(d.byte())
			first := d.uvarint()
			if d.err == nil && (f >= numFields || first != uint64(len(s.dict.strs[f]))) {
				return nil, fmt.Errorf("dictionary entries out of order")
			}
			for range d.count(1) {
				str := d.string()
				if d.err == nil {
					if s.dict.addLocked(f, str) != uint32(len(s.dict.strs[f])-1) {
						return nil, fmt.Errorf("dictionary string repeats")
					}
				}
			}
		case frameNames:
			for range d.count(2) {
				client, name := d.u32(), d.u32()
				if d.err == nil && (client >= uint32(len(s.dict.strs[fClient])) || name >= uint32(len(s.dict.strs[fName]))) {
					d.fail()
				}
				if d.err == nil {
					s.st.names[client] = name
				}
			}
		case frameKeys:
			for range d.count(3) {
				at, k := d.varint(), d.string()
				r := apiusage.Receipt{Accepted: int(d.uvarint()), Duplicates: int(d.uvarint())}
				if d.err == nil && s.dd.live(at, now) {
					s.dd.addKey(k, r, at)
				}
			}
		case frameIDs:
			for range d.count(3) {
				at, org, id := d.varint(), d.u32(), d.string()
				if d.err == nil && org >= uint32(len(s.dict.strs[fOrg])) {
					d.fail()
				}
				if d.err == nil && s.dd.live(at, now) {
					s.dd.addID(idKey{org: org, id: id}, at)
				}
			}
		case frameEnd:
			if len(d.b) != 0 {
				d.fail()
			}
			if d.err != nil {
				return nil, d.err
			}
			for f := range numFields {
				s.logged[f] = len(s.dict.strs[f])
			}
			s.st.last = nil
			if version < 3 {
				s.st.deriveUsers()
			}
			s.oldSnap = version < snapVersion
			m.evict(evicted, len(m.b))
			refs = map[uint64]bool{}
			for seg := range colds.files {
				refs[seg] = true
			}
			return refs, nil
		default:
			return nil, fmt.Errorf("unknown frame kind %q", kind)
		}
		if d.err == nil && len(d.b) != 0 {
			d.fail()
		}
		if d.err != nil {
			return nil, fmt.Errorf("frame %q: %w", kind, d.err)
		}
	}
}

// coldLoader maps the cold files a snapshot being loaded refers to, as
// its references come; last is the one the last reference was to.
type coldLoader struct {
	s     *Store
	files map[uint64]*mappedFile
	last  *mappedFile
}

// done lets the pages of the file referred to last go.
func (cs *coldLoader) done() {
	if cs.last != nil {
		cs.last.evict(0, len(cs.last.b))
	}
}

// load loads the hour a 'P' frame refers to, or the user rollup a 'V'
// frame does (ref is the frame's kind): it checks the range is whole frames
// of the cold file, each a 'T' frame of the hour ('U' of the day), and
// gives them to tl. Hours come in time order, and a cold file holds the hours one
// checkpoint packed, mostly consecutive: the pages of the file referred to
// before, all read to be checked, are let go once the references move on
// to another.
func (cs *coldLoader) load(d *decoder, tl *tableLoader, ref byte) error {
	kind := rowsFrame[ref]
	seg, hour, lo, hi := d.uvarint(), d.varint(), d.uvarint(), d.uvarint()
	if d.err != nil || len(d.b) != 0 {
		return errCorrupt
	}
	c := cs.files[seg]
	if c == nil {
		var err error
		if c, err = cs.s.openCold(seg); err != nil {
			return err
		}
		cs.files[seg] = c
	}
	if c != cs.last {
		cs.done()
		cs.last = c
	}
	if lo >= hi || hi > uint64(len(c.b)) {
		return fmt.Errorf("%s: range [%d, %d) out of the file", coldName(seg), lo, hi)
	}
	data := c.b[lo:hi]
	for len(data) > 0 {
		// The checksum is checked by the worker that decodes the frame:
		// here, on the one goroutine reading the frames, it was a sixth of
		// a restart's CPU, and the first touch of the cold file's pages
		// (which it does) is the slower part of it.
		at := int64(len(c.b) - len(data))
		payload, sum, rest, err := splitFrame(data)
		if err != nil {
			return fmt.Errorf("%s at %d: %w", coldName(seg), at, err)
		}
		data = rest
		f := decoder{b: payload}
		if f.byte() != kind || f.varint() != hour || f.err != nil {
			return fmt.Errorf("%s: a frame of the range is not of the hour", coldName(seg))
		}
		tl.add(&tableJob{payload: payload[1:], kind: kind, frame: payload, sum: sum, src: c, at: coldRange{int64(lo), int64(hi)}})
	}
	return nil
}

// tableChunk is the rows of one 'T', 'S' or 'U' frame: decoded for the
// slim rollup, checked and kept packed (a slice of the frame) for an hour
// or a user rollup.
type tableChunk struct {
	kind   byte  // the frame's
	hour   int64 // the day, for a daily rollup
	keys   []key
	cnts   []cnt
	packed packedChunk
	rows   int    // rows of packed
	org    uint32 // organization of packed, or manyOrgs
	err    error
}

// decodeTable decodes an 'S' frame after its kind byte, or checks a 'T' or
// 'U' frame, whose rows stay packed, checking ids against the dictionary
// sizes nstr in both; scratch is the calling worker's, for the check. It
// only reads, so that frames decode in parallel (see tableLoader).
func decodeTable(payload []byte, kind byte, nstr *[numFields]uint32, scratch *columns) tableChunk {
	d := decoder{b: payload}
	slim := kind == frameSlim
	c := tableChunk{kind: kind, hour: d.varint()}
	if !slim && d.err == nil {
		// An hour's rows stay packed (see packed.go): checked, not decoded.
		chunk := packedChunk(d.b)
		n, org, err := checkRows(chunk, omitsOf(kind), nstr, scratch)
		if err != nil {
			return tableChunk{err: err}
		}
		c.packed, c.rows, c.org = chunk[:len(chunk):len(chunk)], n, org
		return c
	}
	n := d.count(6)
	if d.err != nil {
		return tableChunk{err: d.err}
	}
	keys := make([]key, n)
	cols := []struct {
		field int
		at    func(*key) *uint32
	}{
		{fOrg, func(k *key) *uint32 { return &k.org }},
		{fClient, func(k *key) *uint32 { return &k.client }},
		{fUser, func(k *key) *uint32 { return &k.user }},
		{fTmpl, func(k *key) *uint32 { return &k.tmpl }},
		{fMethod, func(k *key) *uint32 { return &k.method }},
	}
	for _, col := range cols {
		if slim && col.field == fUser {
			continue
		}
		max := nstr[col.field]
		for i := range keys {
			v := d.u32()
			if v >= max {
				d.fail()
			}
			*col.at(&keys[i]) = v
		}
	}
	cnts := make([]cnt, n)
	for i := range cnts {
		cnts[i] = d.cnt()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return tableChunk{err: d.err}
	}
	c.keys, c.cnts = keys, cnts
	return c
}

// addChunk appends decoded rows to their hour, or to their day's slim or
// user rollup, without building an index: most tables are never written
// again.
func (s *Store) addChunk(c tableChunk, src *mappedFile, at coldRange) {
	var t *table
	switch c.kind {
	case frameSlim:
		t = &s.st.part(c.hour).slim
		for i := range c.keys {
			s.st.noteClient(c.keys[i].client, c.keys[i].org)
		}
	case frameUsers:
		t = &s.st.part(c.hour).users
	default:
		day := floorDiv(c.hour, 24)
		p := s.st.part(day)
		h := c.hour - day*24
		if p.hours[h] == nil {
			p.hours[h] = new(table)
		}
		t = p.hours[h]
	}
	if c.kind != frameSlim {
		if c.packed != nil && t.keys == nil {
			t.packed = append(t.packed, c.packed)
			t.packedOrg = append(t.packedOrg, c.org)
			t.packedRows += c.rows
			t.packedSrc, t.packedAt = src, at
			return
		}
		if c.packed != nil {
			// Not what this package's snapshots hold (a table's rows are
			// all packed or none), but readable all the same.
			var cols columns
			var err error
			if c.keys, c.cnts, err = decodeRows(c.packed, t.omit, &noLimits, &cols, nil, nil); err != nil {
				panic(fmt.Sprintf("embedded: a checked chunk does not decode: %v", err))
			}
		}
	}
	if t.keys == nil {
		t.keys, t.cnts = c.keys, c.cnts
		return
	}
	t.keys = append(t.keys, c.keys...)
	t.cnts = append(t.cnts, c.cnts...)
}

// tableLoader decodes the table frames of a snapshot on every core while
// the frames are read, and adds them to the state in file order: decoding
// (and the first touch of the memory the rows go to) is most of what a
// restart costs. It runs only while table frames follow one another: any
// other frame waits for it (see Store.loadSnapshot), so that the dictionary
// the decoders check ids against never changes under them.
type tableLoader struct {
	jobs  chan *tableJob
	order chan *tableJob
	done  chan error
	nstr  [numFields]uint32
}

// tableJob is a table frame to decode: its payload (after its kind byte),
// a slice of src, a mapped snapshot or cold file, which packed chunks keep;
// at is where the hour's frames are in a cold file.
type tableJob struct {
	payload []byte
	kind    byte
	// frame, when not nil, is the whole payload of payload's frame, whose
	// checksum the worker checks against sum before decoding.
	frame []byte
	sum   uint32
	src   *mappedFile // the file payload is a slice of
	at    coldRange   // where its hour's frames are in src, a cold file
	out   chan tableChunk
}

func (s *Store) startTableLoader() *tableLoader {
	workers := runtime.GOMAXPROCS(0)
	l := &tableLoader{
		jobs:  make(chan *tableJob, 2*workers),
		order: make(chan *tableJob, 4*workers),
		done:  make(chan error, 1),
	}
	for f := range numFields {
		l.nstr[f] = uint32(len(s.dict.strs[f]))
	}
	for range workers {
		go func() {
			var cols columns // this worker's scratch for checking chunks
			for j := range l.jobs {
				if j.frame != nil && crc32.Checksum(j.frame, castagnoli) != j.sum {
					j.out <- tableChunk{err: fmt.Errorf("%s: %w", coldName(j.src.coldSeg), errTorn)}
					continue
				}
				j.out <- decodeTable(j.payload, j.kind, &l.nstr, &cols)
			}
		}()
	}
	go func() {
		var err error
		for j := range l.order {
			c := <-j.out
			if err == nil && c.err != nil {
				err = c.err
			}
			if err == nil {
				s.addChunk(c, j.src, j.at)
			}
		}
		l.done <- err
	}()
	return l
}

// add decodes j's table frame, in turn with the others added.
func (l *tableLoader) add(j *tableJob) {
	j.out = make(chan tableChunk, 1)
	l.order <- j
	l.jobs <- j
}

// wait waits for every frame given to be added to the state, and returns
// the first error.
func (l *tableLoader) wait() error {
	close(l.jobs)
	close(l.order)
	return <-l.done
}

// startCheckpoint begins a checkpoint: it starts a new WAL segment, takes a
// snapshot of the state, which holds every segment before the new one, and
// writes it in the background. The writer goes on appending meanwhile.
func (s *Store) startCheckpoint() {
	next := s.seg + 1
	f, err := openSegment(s.dir, next, 0)
	if err != nil {
		s.checkpointDone(checkpointResult{err: fmt.Errorf("start WAL segment: %w", err)})
		return
	}
	s.wal.Close() // fsynced by its last commit
	s.wal, s.seg, s.walOff = f, next, 0
	s.ckCovered = s.walSize
	s.st.lateRows = 0 // the rows beside chunks are merged by this one
	snap := s.cloneState(next, s.now().UnixNano())
	s.ckRunning = true
	go func() {
		res := checkpointResult{err: s.writeCheckpoint(snap)}
		if res.err == nil && len(snap.packs) > 0 {
			res.packs = snap.packs
			if res.src, res.err = s.openCold(snap.seg); res.err != nil {
				// The snapshot is in place, and the packed tables are
				// still those it refers to: only packing is lost, until
				// the next checkpoint.
				s.log.Error("map the new cold file; no table packed", "err", res.err)
				res.packs, res.err = nil, nil
			}
		}
		s.ckDone <- res
	}()
}

// writeCheckpoint writes a snapshot and deletes what it makes redundant.
func (s *Store) writeCheckpoint(snap *snapshot) error {
	start := time.Now()
	size, err := snap.write(s.dir)
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	s.lastSnap.Store(size)
	s.m.checkpointSeconds.Observe(time.Since(start).Seconds())
	s.log.Debug("checkpoint written", "snapshot", snapName(snap.seg), "tables", len(snap.tables),
		"seconds", time.Since(start).Seconds())
	if err := s.removeCovered(snap.seg); err != nil {
		return fmt.Errorf("remove old WAL segments: %w", err)
	}
	if err := s.removeCold(snap.refs, snap.seg); err != nil {
		return fmt.Errorf("remove old cold files: %w", err)
	}
	return nil
}

// checkpointResult is the outcome of a checkpoint: its error, and where it
// wrote the chunks of packed tables and of tables to pack in its cold file,
// src.
type checkpointResult struct {
	err   error
	packs []packResult
	src   *mappedFile
}

// checkpointDone takes the outcome of a checkpoint. A failed one is logged
// (the WAL still holds everything) and retried once the WAL has grown by
// half its bound again. A successful one moves the packed tables it copied
// to its cold file, and packs the tables it was asked to, unless they
// changed since it copied them.
func (s *Store) checkpointDone(res checkpointResult) {
	if s.ckRunning {
		s.ckRunning = false
	}
	if err := res.err; err != nil {
		s.log.Error("checkpoint failed", "err", err)
		s.m.checkpointErrors.Inc()
		s.ckFailed = s.walSize
		return
	}
	s.walSize -= s.ckCovered
	s.ckCovered, s.ckFailed = 0, 0
	if len(res.packs) == 0 {
		return
	}
	chunks := func(p packResult) []packedChunk {
		cs := make([]packedChunk, len(p.chunks))
		for i, c := range p.chunks {
			cs[i] = res.src.chunk(c.off, c.n)
		}
		return cs
	}
	s.mu.Lock()
	for _, p := range res.packs {
		t := p.t
		if p.was != nil {
			// Unless a late event unpacked it since (only Open
			// unpacks), or, for rows merged, added rows since.
			same := len(t.packed) == len(p.was) && unsafe.SliceData(t.packed) == unsafe.SliceData(p.was)
			switch {
			case same && p.merged && t.gen == p.gen:
				t.pack(chunks(p), p.orgs, p.rows, res.src, p.at)
			case same && !p.merged:
				t.packed, t.packedSrc, t.packedAt = chunks(p), res.src, p.at
			}
			continue
		}
		if t.gen != p.gen || t.packed != nil || len(t.keys) != p.rows || t.tail() != 0 {
			continue
		}
		t.pack(chunks(p), p.orgs, p.rows, res.src, p.at)
	}
	s.mu.Unlock()
}

// finalCheckpoint writes a snapshot of everything on Close, so that the next
// Open replays no WAL. After a failed WAL write it writes none: the state then
// remembers ids and keys of batches that were refused.
func (s *Store) finalCheckpoint() error {
	if s.broken != nil || s.walSize == 0 && !s.oldSnap {
		return s.wal.Close()
	}
	snap := s.cloneState(s.seg+1, s.now().UnixNano())
	if err := s.writeCheckpoint(snap); err != nil {
		s.wal.Close()
		return fmt.Errorf("final checkpoint: %w", err)
	}
	return s.wal.Close()
}
