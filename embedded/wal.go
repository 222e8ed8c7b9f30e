package embedded

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apiusage/apiusage"
)

// WAL record payloads. A record is one group commit:
//
//	byte    recGroup
//	varint  at: the writer's clock (unix ns) when it decided the group
//	uvarint n, n × (byte field, uvarint first new id, uvarint count, that
//	        many strings): the dictionary entries added since the last record
//	then batches, each secBatch followed by:
//	  string  idempotency key ("" for none); with a key, uvarint accepted,
//	          uvarint duplicates (the receipt to replay)
//	  uvarint n, n × (uvarint org id, string event id): ids now remembered
//	  uvarint n, n × (uvarint client id, uvarint name id): client names
//	  uvarint n, n × delta: varint hour (relative to the previous delta's),
//	          uvarint org, client, user, template, method ids, counters
//	and secEnd.
//
// Strings are uvarint length and bytes; counters are a bitmask byte and the
// non-zero values as uvarints (putCnt). Records hold only decisions already
// made (deduplicated deltas, remembered ids), so replay never decides again:
// it cannot count differently from the run that wrote them.
const (
	recGroup = 1
	secEnd   = 0
	secBatch = 1
)

func encodeBatch(b []byte, p *prepared) []byte {
	b = putString(b, p.key)
	if p.key != "" {
		b = putUvarint(b, uint64(p.receipt.Accepted))
		b = putUvarint(b, uint64(p.receipt.Duplicates))
	}
	b = putUvarint(b, uint64(len(p.newIDs)))
	for _, k := range p.newIDs {
		b = putUvarint(b, uint64(k.org))
		b = putString(b, k.id)
	}
	b = putUvarint(b, uint64(len(p.names)))
	for _, n := range p.names {
		b = putUvarint(b, uint64(n.client))
		b = putUvarint(b, uint64(n.name))
	}
	b = putUvarint(b, uint64(len(p.deltas)))
	var prev int64
	for _, d := range p.deltas {
		b = putVarint(b, d.hour-prev)
		prev = d.hour
		b = putUvarint(b, uint64(d.k.org))
		b = putUvarint(b, uint64(d.k.client))
		b = putUvarint(b, uint64(d.k.user))
		b = putUvarint(b, uint64(d.k.tmpl))
		b = putUvarint(b, uint64(d.k.method))
		b = putCnt(b, d.c)
	}
	return b
}

// replayRecord decodes one WAL record of the store being recovered, and
// hands each of its batches to ap, which applies them to the state. The
// deltas of each batch are aggregated into daily deltas before they are
// applied, as Append aggregates them (see prepared.addDelta), in one of ap's
// scratches: a replay then updates each daily rollup once per distinct row
// of a batch, as the run that wrote the record did, not once per hourly row.
//
// It changes the dictionaries, the remembered keys and ids and s.logged,
// never s.st: that is ap's, on a goroutine of its own.
func (s *Store) replayRecord(payload []byte, now int64, ap *applier) error {
	d := decoder{b: payload}
	if d.byte() != recGroup {
		return fmt.Errorf("unknown record type")
	}
	at := d.varint()
	for range d.count(3) {
		f := int(d.byte())
		first := d.uvarint()
		n := d.count(1)
		if d.err != nil || f >= numFields || first > uint64(len(s.dict.strs[f])) {
			return fmt.Errorf("dictionary entries do not follow")
		}
		for i := range n {
			str := d.string()
			if id := first + uint64(i); d.err == nil && id >= uint64(len(s.dict.strs[f])) {
				if s.dict.addLocked(f, str) != uint32(id) {
					return fmt.Errorf("dictionary string %d of field %d repeats an earlier one", id, f)
				}
			}
		}
	}
	var nstr [numFields]uint32
	for f := range numFields {
		s.logged[f] = len(s.dict.strs[f])
		nstr[f] = uint32(len(s.dict.strs[f]))
	}
	checkKey := func(k key) {
		if k.org >= nstr[fOrg] || k.client >= nstr[fClient] || k.user >= nstr[fUser] ||
			k.tmpl >= nstr[fTmpl] || k.method >= nstr[fMethod] {
			d.fail()
		}
	}
	for d.err == nil {
		switch d.byte() {
		case secEnd:
			if len(d.b) != 0 {
				d.fail()
			}
			return d.err
		case secBatch:
		default:
			d.fail()
			continue
		}
		ikey := d.string()
		if ikey != "" {
			r := apiusage.Receipt{Accepted: int(d.uvarint()), Duplicates: int(d.uvarint())}
			if d.err == nil && s.dd.live(at, now) {
				s.dd.addKey(ikey, r, at)
			}
		}
		for range d.count(2) {
			k := idKey{org: d.u32(), id: d.string()}
			if k.org >= nstr[fOrg] {
				d.fail()
			}
			if d.err == nil && s.dd.live(at, now) {
				s.dd.addID(k, at)
			}
		}
		var names []nameAt
		for range d.count(2) {
			client, name := d.u32(), d.u32()
			if client >= nstr[fClient] || name >= nstr[fName] {
				d.fail()
			}
			if d.err == nil {
				names = append(names, nameAt{client: client, name: name})
			}
		}
		var hour int64
		n := d.count(7)
		sc := ap.scratch()
		p := sc.aggregate(n)
		p.names = names
		for range n {
			hour += d.varint()
			k := key{org: d.u32(), client: d.u32(), user: d.u32(), tmpl: d.u32(), method: d.u32()}
			c := d.cnt()
			checkKey(k)
			if d.err == nil {
				p.addDelta(rowKey{hour: hour, k: k}, c)
			}
		}
		if d.err != nil {
			sc.keep(p)
			ap.free <- sc
			break
		}
		ap.apply(p, sc)
	}
	return d.err
}

// applier applies the batches a replay decodes to the state, on a
// goroutine of its own, while the replay reads and decodes the next ones:
// a restart after a crash replays up to a checkpoint's worth of WAL, and
// the two halves of the work, decoding and aggregating a batch and
// updating the rollups with it, then run on two cores instead of one.
// Batches are applied in the order they were decoded.
type applier struct {
	st   *state
	free chan *batchScratch // scratches not in use
	todo chan replayed      // batches decoded, to apply
	done chan struct{}      // closed once every batch is applied
}

// replayed is a batch decoded, and the scratch its deltas are in.
type replayed struct {
	p  *prepared
	sc *batchScratch
}

// replayScratches is how many batches' scratches a replay uses: one being
// decoded, one waiting and one being applied.
const replayScratches = 3

// startApplier starts applying batches to st.
func startApplier(st *state) *applier {
	ap := &applier{
		st:   st,
		free: make(chan *batchScratch, replayScratches),
		todo: make(chan replayed, replayScratches-2),
		done: make(chan struct{}),
	}
	for range replayScratches {
		ap.free <- new(batchScratch)
	}
	go func() {
		defer close(ap.done)
		for r := range ap.todo {
			ap.st.applyPrepared(r.p)
			r.sc.keep(r.p)
			ap.free <- r.sc
		}
	}()
	return ap
}

// scratch returns a scratch to decode a batch into, once one is free.
func (ap *applier) scratch() *batchScratch { return <-ap.free }

// apply hands a batch decoded into sc over to be applied.
func (ap *applier) apply(p *prepared, sc *batchScratch) { ap.todo <- replayed{p, sc} }

// wait waits until every batch handed over is applied. The applier may not
// be used after.
func (ap *applier) wait() {
	close(ap.todo)
	<-ap.done
}

// File names in the data directory. Numbers are zero-padded so that names
// sort as numbers do. A snapshot numbered N holds everything in the WAL
// segments numbered below N.
const (
	walPrefix  = "wal-"
	walSuffix  = ".log"
	snapPrefix = "snap-"
	snapSuffix = ".bin"
	tmpSuffix  = ".tmp"
)

func walName(seg uint64) string  { return fmt.Sprintf("%s%020d%s", walPrefix, seg, walSuffix) }
func snapName(seg uint64) string { return fmt.Sprintf("%s%020d%s", snapPrefix, seg, snapSuffix) }

func parseName(name, prefix, suffix string) (uint64, bool) {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	n, err := strconv.ParseUint(name[len(prefix):len(name)-len(suffix)], 10, 64)
	return n, err == nil
}

// recovery is what Open did to recover a store: what Store.recover read
// and how long each part took, for the "recovered" log line (an operator
// restarting after a crash wants to know where the time went).
type recovery struct {
	snapBytes  int64         // size of the snapshot loaded, 0 for none
	coldFiles  int           // cold files it refers to
	snapTime   time.Duration // loading it
	segments   int           // WAL segments replayed
	walBytes   int64         // valid bytes in them
	records    int           // records replayed
	replayTime time.Duration // replaying them
	freezeTime time.Duration // freezing the recovered tables (Store.freezeAll)
	startedAt  time.Time     // when Open began
}

// logRecovery logs what recovery did.
func (s *Store) logRecovery(r *recovery) {
	s.log.Info("recovered",
		"snapshot_bytes", r.snapBytes, "cold_files", r.coldFiles, "snapshot_ms", r.snapTime.Milliseconds(),
		"wal_segments", r.segments, "wal_bytes", r.walBytes, "wal_records", r.records, "replay_ms", r.replayTime.Milliseconds(),
		"freeze_ms", r.freezeTime.Milliseconds(), "total_ms", time.Since(r.startedAt).Milliseconds())
}

// recover loads the newest snapshot and replays the WAL segments after it,
// then opens the last segment for appending. It notes what it did in r.
func (s *Store) recover(r *recovery) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var snaps, segs []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, snapPrefix) && strings.HasSuffix(name, tmpSuffix) {
			// A snapshot that was never renamed into place: incomplete.
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return err
			}
			continue
		}
		if n, ok := parseName(name, snapPrefix, snapSuffix); ok {
			snaps = append(snaps, n)
		}
		if n, ok := parseName(name, walPrefix, walSuffix); ok {
			segs = append(segs, n)
		}
	}
	slices.Sort(snaps)
	slices.Sort(segs)
	now := s.now().UnixNano()

	var base uint64
	var refs map[uint64]bool // the cold files the snapshot refers to
	if len(snaps) > 0 {
		base = snaps[len(snaps)-1]
		start := time.Now()
		if refs, err = s.loadSnapshot(filepath.Join(s.dir, snapName(base)), now); err != nil {
			return fmt.Errorf("load snapshot %s: %w", snapName(base), err)
		}
		r.snapTime = time.Since(start)
		r.snapBytes, r.coldFiles = s.lastSnap.Load(), len(refs)
	}
	// Files a crash left behind after the snapshot that covers them was
	// written: they hold nothing new. Cold files the snapshot does not
	// refer to are older ones, or a checkpoint's that did not finish.
	if err := s.removeCovered(base); err != nil {
		return err
	}
	if err := s.removeCold(refs, ^uint64(0)); err != nil {
		return err
	}
	segs = slices.DeleteFunc(segs, func(n uint64) bool { return n < base })

	start := time.Now()
	ap := startApplier(s.st)
	// On an error too: the applier must be done with the state when
	// recover returns.
	defer func() {
		if ap != nil {
			ap.wait()
		}
	}()
	for i, seg := range segs {
		last := i == len(segs)-1
		valid, size, err := s.replaySegment(filepath.Join(s.dir, walName(seg)), now, ap, &r.records)
		if err != nil {
			return fmt.Errorf("replay %s: %w", walName(seg), err)
		}
		if valid < size && !last {
			return fmt.Errorf("replay %s: corrupt record at offset %d, and later segments exist", walName(seg), valid)
		}
		if valid < size {
			s.log.Warn("cut a torn record off the end of the WAL", "segment", walName(seg), "offset", valid, "bytes", size-valid)
		}
		s.walSize += valid
		if last {
			s.seg, s.walOff = seg, valid
		}
	}
	ap.wait()
	ap = nil
	r.replayTime, r.segments, r.walBytes = time.Since(start), len(segs), s.walSize
	if len(segs) == 0 {
		s.seg = base
	}
	if s.wal, err = openSegment(s.dir, s.seg, s.walOff); err != nil {
		return err
	}
	s.dd.expire(now)
	return nil
}

// replaySegment hands every valid record of a segment to ap and returns
// where the valid records end and the file's size; it counts the records
// in records.
func (s *Store) replaySegment(path string, now int64, ap *applier, records *int) (valid, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var buf []byte
	for {
		buf, err = readFrame(r, buf, st.Size()-valid)
		if err == io.EOF {
			return valid, st.Size(), nil
		}
		if errors.Is(err, errTorn) {
			return valid, st.Size(), nil
		}
		if err != nil {
			return 0, 0, err
		}
		if err := s.replayRecord(buf, now, ap); err != nil {
			return 0, 0, fmt.Errorf("record at offset %d: %w", valid, err)
		}
		*records++
		valid += int64(frameHeader + len(buf))
	}
}

// openSegment opens (creating it if needed) a WAL segment for writing at
// off, cutting off anything after it: a torn record.
func openSegment(dir string, seg uint64, off int64) (*os.File, error) {
	path := filepath.Join(dir, walName(seg))
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(off); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if os.IsNotExist(statErr) {
		// The new name must be durable before records in it are
		// acknowledged.
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// removeCovered deletes the WAL segments and snapshots older than the
// snapshot numbered base.
func (s *Store) removeCovered(base uint64) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		name := e.Name()
		n, isWAL := parseName(name, walPrefix, walSuffix)
		if !isWAL {
			var isSnap bool
			if n, isSnap = parseName(name, snapPrefix, snapSuffix); !isSnap {
				continue
			}
		}
		if n < base {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return err
			}
			removed = true
		}
	}
	if removed {
		return syncDir(s.dir)
	}
	return nil
}

// syncDir fsyncs a directory, making creations, renames and removals in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
