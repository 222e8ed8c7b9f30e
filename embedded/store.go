package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusage/apiusage"
)

var _ apiusage.Store = (*Store)(nil)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Logger receives recovery and checkpoint messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the deduplication window; nil means time.Now.
	Now func() time.Time
	// DedupWindow is how long idempotency keys and event ids are
	// remembered; 0 means 25 hours (the contract asks for at least 24).
	DedupWindow time.Duration
	// CheckpointBytes is the WAL size past which a snapshot is written and
	// the WAL started anew; 0 means 64 MiB. When the last snapshot is larger
	// than twice this, the WAL may grow to half the snapshot instead, so
	// that checkpoints of a large state are not back to back.
	CheckpointBytes int64
	// Registerer, when set, gets the store's histograms and counters.
	Registerer prometheus.Registerer
}

// Defaults of Options.
const (
	DefaultDedupWindow     = 25 * time.Hour
	DefaultCheckpointBytes = 64 << 20
)

// packRows is how many rows of cold hourly tables make a checkpoint start
// early to pack them: about 44 MB of rows, and as much of index.
const packRows = 1 << 20

// Bounds of group commit: how much one WAL write may carry. They bound the
// latency a batch adds to the others of its group and the size of a record.
const (
	maxGroupBatches = 1024
	maxGroupBytes   = 64 << 20
	maxBatchBytes   = 256 << 20
)

// Store is the embedded usage store: hourly rollups in memory, made durable
// by a write-ahead log and snapshots in one data directory. See the package
// documentation for the formats.
//
// A Store is safe for concurrent use.
type Store struct {
	dir     string
	log     *slog.Logger
	now     func() time.Time
	ckBytes int64
	m       *metrics
	dict    *dicts
	lock    *os.File // the data directory's lock, held while open

	// mu guards st: queries read it, the writer goroutine changes it.
	mu sync.RWMutex
	st *state

	// life guards closed; inflight counts Appends past the closed check, so
	// that Close can wait for them before closing reqs.
	life     sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
	reqs     chan *prepared
	batches  chan *batchScratch // free list of batch preparation memory
	done     chan struct{}      // closed when the writer has stopped
	closeErr error              // the writer's final error, read after done

	// Owned by the writer goroutine (and by Open before it starts).
	dd        *dedup
	wal       *os.File
	seg       uint64         // number of the WAL segment being written
	walOff    int64          // where the next record goes in it
	walSize   int64          // bytes in segments no snapshot covers
	logged    [numFields]int // dictionary entries written to the WAL or a snapshot
	broken    error          // a failed WAL write: nothing more may be appended
	buf       []byte
	ckRunning bool
	ckDone    chan checkpointResult
	ckFailed  int64        // walSize at the last failed checkpoint, to back off
	ckCovered int64        // walSize the running checkpoint covers
	lastSnap  atomic.Int64 // size of the newest snapshot, in bytes

	// packBits bounds the packed sort keys of queries, and maxDense the
	// dense arrays they find groups in: 64 and maxDenseSlots, but in tests
	// of the other paths.
	packBits int
	maxDense int
	// packRows is packRows but in tests.
	packRows int
	// rowPool holds one result's rows for reuse (see rowpool.go).
	rowPool chan []apiusage.Row

	// scratch holds the working memory of queries not running (see
	// scratch.go).
	scratch chan *scratch
	// order caches the order of the dictionaries' strings for queries.
	order dictOrder
	// freezeBuf is the writer's scratch for sorting tables it freezes.
	freezeBuf []uint64
}

// Open opens the usage store in dir, creating the directory when needed, and
// recovers it: the newest snapshot, then every WAL record after it. A torn
// record at the end of the WAL (a crash while writing it) is cut off, since
// no Append it held was acknowledged.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DedupWindow <= 0 {
		opts.DedupWindow = DefaultDedupWindow
	}
	if opts.CheckpointBytes <= 0 {
		opts.CheckpointBytes = DefaultCheckpointBytes
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	s := &Store{
		dir:     dir,
		log:     opts.Logger,
		now:     opts.Now,
		ckBytes: opts.CheckpointBytes,
		m:       m,
		dict:    newDicts(),
		lock:    lock,
		st:      newState(),
		dd:      newDedup(int64(opts.DedupWindow)),
		reqs:    make(chan *prepared, maxGroupBatches),
		batches: make(chan *batchScratch, maxScratch),
		done:    make(chan struct{}),
		ckDone:  make(chan checkpointResult, 1),

		packBits: 64,
		maxDense: maxDenseSlots,
		packRows: packRows,
		rowPool:  make(chan []apiusage.Row, 1),
		scratch:  make(chan *scratch, scratches),
	}
	for f := range s.logged {
		s.logged[f] = 1 // id 0, the empty string, is implicit
	}
	if err := s.recover(); err != nil {
		if s.wal != nil {
			s.wal.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("recover %s: %w", dir, err)
	}
	s.freezeAll()
	go s.writer()
	return s, nil
}

// errClosed is returned by every method of a closed store.
var errClosed = apiusage.Errorf(apiusage.CodeUnavailable, "the usage store is closed")

// Append stores b durably: it returns once the WAL record holding b is
// fsynced, and b is then visible to Query. Concurrent Appends share one
// write and one fsync.
//
// A canceled context fails an Append that has not been written yet; once the
// writer has taken it, Append waits for the outcome, so that an error always
// means nothing was stored.
func (s *Store) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return apiusage.Receipt{}, err
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return apiusage.Receipt{}, errClosed
	}
	s.inflight.Add(1)
	s.life.RUnlock()
	defer s.inflight.Done()

	p, err := s.prepare(ctx, b)
	if err != nil {
		return apiusage.Receipt{}, err
	}
	select {
	case s.reqs <- p:
	case <-ctx.Done():
		s.release(p)
		return apiusage.Receipt{}, ctx.Err()
	}
	err = <-p.done
	s.release(p)
	if err != nil {
		return apiusage.Receipt{}, err
	}
	s.m.appendSeconds.Observe(time.Since(start).Seconds())
	return p.receipt, nil
}

// ClientNames returns the last name events gave each client that was given
// one.
func (s *Store) ClientNames(ctx context.Context) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, errClosed
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	strs := s.dict.all() // after s.mu: see Query
	out := make(map[string]string, len(s.st.names))
	for client, name := range s.st.names {
		out[strs[fClient][client]] = strs[fName][name]
	}
	return out, nil
}

func (s *Store) isClosed() bool {
	s.life.RLock()
	defer s.life.RUnlock()
	return s.closed
}

// Close waits for pending Appends, writes a final snapshot and releases the
// data directory. Closing twice is harmless.
func (s *Store) Close() error {
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	s.closed = true
	s.life.Unlock()
	s.inflight.Wait()
	close(s.reqs)
	<-s.done
	return errors.Join(s.closeErr, s.lock.Close())
}

// rowKey is a rollup row of one hour.
type rowKey struct {
	hour int64
	k    key
}

// idEvent is an event with an id: whether it counts is the writer's call.
type idEvent struct {
	id   string
	rk   rowKey
	c    cnt
	name uint32 // the client name id it gives, 0 for none
	pos  int    // its index in the batch, to find the last name given
}

// nameAt is a client name given by the event at pos of a batch.
type nameAt struct {
	client, name uint32
	pos          int
}

// prepared is a batch turned into rollup deltas by its Append goroutine, so
// that the single writer only decides ids and keys, encodes and applies.
type prepared struct {
	ctx      context.Context
	key      string
	accepted int
	deltas   []delta
	index    *deltaIndex
	// slim are the deltas of the slim daily rollup; their hour field is
	// the day.
	slim      []delta
	slimIndex *deltaIndex
	ids       []idEvent
	names     []nameAt
	size      int // an upper bound of its encoded size, dictionary included
	// sc lends the slices and maps above; Append gives it back once the
	// writer has answered.
	sc *batchScratch

	// Set by the writer.
	newIDs   []idKey
	write    bool
	answered bool
	receipt  apiusage.Receipt
	done     chan error
}

// batchScratch is the memory a batch is prepared in, kept from batch to batch
// (see Store.batches). Fresh memory is what preparing a batch cost most:
// the maps rebuilt from nothing each batch spent their time growing and
// clearing new buckets, and on a VM every first touch of a page faults.
type batchScratch struct {
	ids       []uint32 // numFields dictionary ids per event
	deltas    []delta
	index     deltaIndex
	slim      []delta
	slimIndex deltaIndex
	evIDs     []idEvent
	names     []nameAt
	// nameOf is, by client id, 1 + the index in names of the name the
	// batch gives that client, or 0: all zero between batches.
	nameOf []int32
	// hint maps the batch's apiusage.BatchStrings to ids: by field, in the
	// order of BatchStrings, the id of each value.
	hint [6][]uint32
}

// Bounds of the scratch kept: how many, and how many events' worth each may
// hold, so that a rare huge batch does not pin its memory for good.
const (
	maxScratch       = 8
	maxScratchEvents = 1 << 16
)

// getBatchScratch returns a scratch from the free list, or a new one.
func (s *Store) getBatchScratch() *batchScratch {
	select {
	case sc := <-s.batches:
		return sc
	default:
		return &batchScratch{}
	}
}

// release gives a prepared batch's scratch back once nothing reads it: its
// Append has its answer (the writer is done with the batch), or the batch
// never reached the writer.
func (s *Store) release(p *prepared) {
	sc := p.sc
	if sc == nil {
		return
	}
	p.sc = nil
	if len(p.deltas) > maxScratchEvents || len(p.ids) > maxScratchEvents || cap(sc.ids) > numFields*maxScratchEvents {
		return
	}
	sc.deltas, sc.slim, sc.names = p.deltas[:0], p.slim[:0], p.names[:0]
	clear(p.ids) // they hold the caller's event ids
	sc.evIDs = p.ids[:0]
	select {
	case s.batches <- sc:
	default:
	}
}

// addDelta adds c to the batch's delta of the hourly row rk and to its delta
// of the slim daily row. Aggregating the slim deltas here, in the Append
// goroutines, leaves the single writer one update of the (large, cache-cold)
// daily table per distinct slim row instead of one per hourly row.
func (p *prepared) addDelta(rk rowKey, c cnt) {
	if i := p.index.slot(p.deltas, rk.hour, rk.k); *i != 0 {
		p.deltas[*i-1].c.add(c)
	} else {
		p.deltas = append(p.deltas, delta{hour: rk.hour, k: rk.k, c: c})
		*i = int32(len(p.deltas))
	}
	k := rk.k
	k.user = 0
	day := floorDiv(rk.hour, 24)
	if i := p.slimIndex.slot(p.slim, day, k); *i != 0 {
		p.slim[*i-1].c.add(c)
	} else {
		p.slim = append(p.slim, delta{hour: day, k: k, c: c})
		*i = int32(len(p.slim))
	}
}

// deltaIndex finds a batch's delta of a row: an open-addressing hash table
// (linear probing) of indexes into the deltas, which hold the keys. It
// replaced a map[rowKey]int32, whose generic hash of the 32-byte key and
// probing were a fifth of the server's ingest CPU; this one hashes two
// multiplications' worth and is cleared, not rebuilt, between batches.
type deltaIndex struct {
	slots []int32 // 1 + the delta's index, or 0 for an empty slot
	shift uint8   // 64 - log2(len(slots))
}

// reset empties the index and sizes it for up to n deltas, at most half
// full so that probes stay short.
func (x *deltaIndex) reset(n int) {
	size := max(64, 1<<bits.Len(uint(2*n)))
	if cap(x.slots) >= size {
		x.slots = x.slots[:size]
		clear(x.slots)
	} else {
		x.slots = make([]int32, size)
	}
	x.shift = uint8(64 - bits.TrailingZeros(uint(size)))
}

// slot returns the slot of the row (hour, k): the index of its delta, or
// the empty slot where it goes. The index must have room for one more.
func (x *deltaIndex) slot(deltas []delta, hour int64, k key) *int32 {
	h := uint64(hour)*0x9e3779b97f4a7c15 ^ (uint64(k.org)|uint64(k.client)<<32)*0xc2b2ae3d27d4eb4f ^
		(uint64(k.user)|uint64(k.tmpl)<<32)*0x165667b19e3779f9 ^ uint64(k.method)*0xff51afd7ed558ccd
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		j := x.slots[i]
		if j == 0 {
			return &x.slots[i]
		}
		if d := &deltas[j-1]; d.hour == hour && d.k == k {
			return &x.slots[i]
		}
	}
}

// prepare resolves the batch's strings to dictionary ids and aggregates the
// events without an id into deltas. New strings get their ids here; the
// writer logs them before any record that uses them. The caller releases the
// result (see release).
func (s *Store) prepare(ctx context.Context, b apiusage.Batch) (*prepared, error) {
	sc := s.getBatchScratch()
	p := &prepared{
		ctx:       ctx,
		key:       b.IdempotencyKey,
		accepted:  len(b.Events),
		deltas:    sc.deltas[:0],
		index:     &sc.index,
		slim:      sc.slim[:0],
		slimIndex: &sc.slimIndex,
		ids:       sc.evIDs[:0],
		names:     sc.names[:0],
		sc:        sc,
		done:      make(chan error, 1),
	}
	// Every event makes at most one delta of each kind, here or, for
	// those with an id, in the writer.
	sc.index.reset(len(b.Events))
	sc.slimIndex.reset(len(b.Events))
	const fields = numFields
	ids := slices.Grow(sc.ids[:0], fields*len(b.Events))[:fields*len(b.Events)]
	sc.ids = ids
	newBytes, clients, hinted, err := s.resolveHint(b, sc, ids)
	if err != nil {
		s.release(p)
		return nil, err
	}
	if !hinted {
		newBytes, clients, err = s.resolve(b, ids)
		if err != nil {
			s.release(p)
			return nil, err
		}
	}
	if len(sc.nameOf) < clients {
		sc.nameOf = slices.Grow(sc.nameOf, clients-len(sc.nameOf))[:clients]
	}
	nameOf := sc.nameOf
	idBytes := 0
	for i := range b.Events {
		e := &b.Events[i]
		f := ids[i*fields : (i+1)*fields]
		rk := rowKey{hour: floorDiv(e.Time.Unix(), 3600), k: key{org: f[fOrg], client: f[fClient], user: f[fUser], tmpl: f[fTmpl], method: f[fMethod]}}
		var c cnt
		c.count(e.Status)
		if e.ID != "" {
			p.ids = append(p.ids, idEvent{id: e.ID, rk: rk, c: c, name: f[fName], pos: i})
			idBytes += len(e.ID) + 10
			continue
		}
		p.addDelta(rk, c)
		if f[fName] != 0 {
			// The last name given wins.
			n := nameAt{client: f[fClient], name: f[fName], pos: i}
			if j := nameOf[n.client]; j != 0 {
				p.names[j-1] = n
			} else {
				p.names = append(p.names, n)
				nameOf[n.client] = int32(len(p.names))
			}
		}
	}
	for _, n := range p.names {
		nameOf[n.client] = 0
	}
	p.size = 64 + len(p.key) + newBytes + idBytes + 16*len(p.names) + 48*(len(p.deltas)+len(p.ids))
	if p.size > maxBatchBytes {
		s.release(p)
		return nil, apiusage.Errorf(apiusage.CodeTooLarge, "batch too large to store at once")
	}
	return p, nil
}

// errDictFull is returned when a batch would give a field more ids than a
// uint32 holds.
var errDictFull = errors.New("dictionary full")

// unknownID marks a string without a dictionary id yet.
const unknownID = math.MaxUint32

// resolve writes the dictionary ids of each event's strings to ids,
// numFields per event, giving new strings their ids. It returns how many
// bytes the new strings take in the WAL, at most, and how many clients the
// dictionary then has.
func (s *Store) resolve(b apiusage.Batch, ids []uint32) (newBytes, clients int, err error) {
	const fields = numFields
	fieldsOf := func(e *apiusage.Event) [fields]string {
		return [fields]string{fOrg: e.OrganizationID, fClient: e.ClientID, fUser: e.UserID,
			fTmpl: e.TemplateURI, fMethod: e.Method, fName: e.ClientName}
	}
	// Neighbouring events mostly share their organization, client, template
	// and method, and many have no user or name: remembering each field's
	// last value skips most dictionary lookups, which dominate this loop.
	type memo struct {
		s  string
		id uint32
	}
	var lastSeen [fields]memo
	missing := 0
	s.dict.mu.RLock()
	for i := range b.Events {
		for j, f := range fieldsOf(&b.Events[i]) {
			var id uint32
			switch {
			case f == "":
				id = 0
			case f == lastSeen[j].s:
				id = lastSeen[j].id
			default:
				var ok bool
				if id, ok = s.dict.ids[j][f]; !ok {
					id = unknownID
					missing++
				} else {
					lastSeen[j] = memo{f, id}
				}
			}
			ids[i*fields+j] = id
		}
	}
	clients = len(s.dict.strs[fClient])
	s.dict.mu.RUnlock()
	if missing == 0 {
		return 0, clients, nil
	}
	s.dict.mu.Lock()
	defer s.dict.mu.Unlock()
	for f := range numFields {
		if len(s.dict.strs[f])+missing >= unknownID {
			return 0, 0, errDictFull
		}
	}
	for i := range b.Events {
		for j, f := range fieldsOf(&b.Events[i]) {
			if ids[i*fields+j] == unknownID {
				n := len(s.dict.strs[j])
				ids[i*fields+j] = s.dict.addLocked(j, f)
				if len(s.dict.strs[j]) > n {
					newBytes += len(f) + 10
				}
			}
		}
	}
	return newBytes, len(s.dict.strs[fClient]), nil
}

// hintFields are the store's fields in the order of
// apiusage.BatchStrings.
var hintFields = [6]int{fOrg, fClient, fName, fUser, fTmpl, fMethod}

// resolveHint is resolve with the batch's apiusage.BatchStrings: each
// distinct value is looked up once, not once per event, which was most of
// the cost of preparing a batch (hashing and comparing identifiers). The
// hint is checked first, every event against it, and not used (hinted is
// false) unless it describes the batch exactly; the check is cheap because
// a decoder's events hold the very strings of its Values.
func (s *Store) resolveHint(b apiusage.Batch, sc *batchScratch, ids []uint32) (newBytes, clients int, hinted bool, err error) {
	h := b.Strings
	if h == nil || len(h.Refs) != len(b.Events) {
		return 0, 0, false, nil
	}
	var n [6]uint32
	for rf := range n {
		n[rf] = uint32(len(h.Values[rf]))
		if n[rf] == 0 {
			return 0, 0, false, nil
		}
	}
	for i := range b.Events {
		e, r := &b.Events[i], &h.Refs[i]
		if r[0] >= n[0] || r[1] >= n[1] || r[2] >= n[2] || r[3] >= n[3] || r[4] >= n[4] || r[5] >= n[5] {
			return 0, 0, false, nil
		}
		if e.OrganizationID != h.Values[0][r[0]] || e.ClientID != h.Values[1][r[1]] ||
			e.ClientName != h.Values[2][r[2]] || e.UserID != h.Values[3][r[3]] ||
			e.TemplateURI != h.Values[4][r[4]] || e.Method != h.Values[5][r[5]] {
			return 0, 0, false, nil
		}
	}
	missing := 0
	s.dict.mu.RLock()
	for rf, f := range hintFields {
		g := slices.Grow(sc.hint[rf][:0], len(h.Values[rf]))[:len(h.Values[rf])]
		sc.hint[rf] = g
		for j, v := range h.Values[rf] {
			if v == "" {
				g[j] = 0
				continue
			}
			id, ok := s.dict.ids[f][v]
			if !ok {
				id = unknownID
				missing++
			}
			g[j] = id
		}
	}
	clients = len(s.dict.strs[fClient])
	s.dict.mu.RUnlock()
	if missing > 0 {
		s.dict.mu.Lock()
		for f := range numFields {
			if len(s.dict.strs[f])+missing >= unknownID {
				s.dict.mu.Unlock()
				return 0, 0, false, errDictFull
			}
		}
		for rf, f := range hintFields {
			g := sc.hint[rf]
			for j, v := range h.Values[rf] {
				if g[j] == unknownID {
					k := len(s.dict.strs[f])
					g[j] = s.dict.addLocked(f, v)
					if len(s.dict.strs[f]) > k {
						newBytes += len(v) + 10
					}
				}
			}
		}
		clients = len(s.dict.strs[fClient])
		s.dict.mu.Unlock()
	}
	org, client, name, user, tmpl, method := sc.hint[0], sc.hint[1], sc.hint[2], sc.hint[3], sc.hint[4], sc.hint[5]
	for i := range h.Refs {
		r := &h.Refs[i]
		o := ids[i*numFields : (i+1)*numFields : (i+1)*numFields]
		o[fOrg], o[fClient], o[fUser] = org[r[0]], client[r[1]], user[r[3]]
		o[fTmpl], o[fMethod], o[fName] = tmpl[r[4]], method[r[5]], name[r[2]]
	}
	return newBytes, clients, true, nil
}

// writer is the only goroutine that writes the WAL and changes the state. It
// takes every Append waiting, writes them as one record with one fsync
// (group commit), applies them, and answers them; it checkpoints when the WAL
// has grown past its bound.
func (s *Store) writer() {
	defer close(s.done)
	group := make([]*prepared, 0, maxGroupBatches)
	open := true
	for open {
		var p *prepared
		select {
		case p, open = <-s.reqs:
		case res := <-s.ckDone:
			s.checkpointDone(res)
			continue
		}
		if !open {
			break
		}
		group = append(group[:0], p)
		size := p.size
	drain:
		for len(group) < maxGroupBatches && size < maxGroupBytes {
			select {
			case p, ok := <-s.reqs:
				if !ok {
					open = false
					break drain
				}
				group = append(group, p)
				size += p.size
			default:
				break drain
			}
		}
		s.commit(group)
		clear(group)
		s.freezeCold()
		// The WAL may grow to half the last snapshot when that is more than
		// the configured bound: a snapshot rewrites the whole state, so
		// its cost stays proportional to what was appended since the last.
		bound := max(s.ckBytes, s.lastSnap.Load()/2)
		if s.broken == nil && !s.ckRunning && s.walSize >= bound && s.walSize-s.ckFailed >= bound/2 {
			s.startCheckpoint()
		} else if s.broken == nil && !s.ckRunning && s.st.newDay && s.walSize-s.ckFailed >= s.ckBytes/16 {
			// A new day began, and the days that went cold may hold many
			// rows to pack (see packed.go): checkpoint early when they do.
			s.st.newDay = false
			if s.st.coldUnpacked() >= s.packRows {
				s.startCheckpoint()
			}
		}
	}
	if s.ckRunning {
		s.checkpointDone(<-s.ckDone)
	}
	s.closeErr = s.finalCheckpoint()
}

// commit writes a group of batches as one WAL record, fsyncs it, applies it
// and answers every batch.
func (s *Store) commit(group []*prepared) {
	if s.broken != nil {
		for _, p := range group {
			p.done <- s.broken
		}
		return
	}
	now := s.now().UnixNano()
	s.dd.expire(now)

	buf, start := beginFrame(s.buf[:0])
	buf = append(buf, recGroup)
	buf = putVarint(buf, now)
	strs := s.dict.all()
	newStrs := false
	sections := 0
	for f := range numFields {
		if len(strs[f]) > s.logged[f] {
			sections++
		}
	}
	buf = putUvarint(buf, uint64(sections))
	for f := range numFields {
		if len(strs[f]) > s.logged[f] {
			newStrs = true
			buf = append(buf, byte(f))
			buf = putUvarint(buf, uint64(s.logged[f]))
			buf = putUvarint(buf, uint64(len(strs[f])-s.logged[f]))
			for _, str := range strs[f][s.logged[f]:] {
				buf = putString(buf, str)
			}
		}
	}
	written := 0
	for _, p := range group {
		if err := p.ctx.Err(); err != nil {
			// answered before the answer: once its Append has it, the batch's
			// scratch is someone else's.
			p.answered = true
			p.done <- err
			continue
		}
		if !s.decide(p, now) {
			continue
		}
		written++
		buf = append(buf, secBatch)
		buf = encodeBatch(buf, p)
	}
	buf = append(buf, secEnd)
	buf = endFrame(buf, start)
	if cap(buf) <= 8<<20 {
		s.buf = buf // reused by the next group; a rare huge one is not kept
	} else {
		s.buf = nil
	}

	if written > 0 || newStrs {
		if err := s.writeWAL(buf); err != nil {
			s.broken = fmt.Errorf("usage store stopped after a failed WAL write: %w", err)
			s.log.Error("WAL write failed; appends are refused until restart", "err", err)
			for _, p := range group {
				if !p.answered {
					p.done <- s.broken
				}
			}
			return
		}
		for f := range numFields {
			s.logged[f] = len(strs[f])
		}
	}

	s.mu.Lock()
	var events int
	for _, p := range group {
		if !p.write {
			continue
		}
		events += s.st.applyPrepared(p)
	}
	s.mu.Unlock()
	s.m.events.Add(float64(events))
	s.m.flushBatches.Observe(float64(len(group)))

	for _, p := range group {
		if p.answered {
			continue // canceled before the writer took it
		}
		if p.receipt.Replayed {
			s.m.replays.Inc()
		}
		s.m.duplicates.Add(float64(p.receipt.Duplicates))
		p.done <- nil
	}
}

// applyPrepared applies a batch's deltas and names and returns how many
// events it counted.
func (st *state) applyPrepared(p *prepared) int {
	events := 0
	for _, d := range p.deltas {
		st.addHour(d)
		events += int(d.c.total)
	}
	for _, d := range p.slim {
		st.addDay(d)
	}
	for _, n := range p.names {
		st.names[n.client] = n.name
	}
	return events
}

// decide settles a batch against what is remembered: a remembered key
// replays its receipt; ids seen before do not count. It remembers the new key
// and ids at once, so that later batches of the same group see them. It
// reports whether the batch has anything to write.
func (s *Store) decide(p *prepared, now int64) bool {
	if p.key != "" {
		if r, ok := s.dd.key(p.key, now); ok {
			r.Replayed = true
			p.receipt = r
			return false
		}
	}
	dups := 0
	var late []nameAt
	for i := range p.ids {
		ie := &p.ids[i]
		k := idKey{org: ie.rk.k.org, id: ie.id}
		if s.dd.seen(k, now) {
			dups++
			continue
		}
		k.id = strings.Clone(k.id)
		s.dd.addID(k, now)
		p.newIDs = append(p.newIDs, k)
		p.addDelta(ie.rk, ie.c)
		if ie.name != 0 {
			late = append(late, nameAt{client: ie.rk.k.client, name: ie.name, pos: ie.pos})
		}
	}
	if len(late) > 0 {
		p.names = mergeNames(p.names, late)
	}
	p.receipt = apiusage.Receipt{Accepted: p.accepted, Duplicates: dups}
	if p.key != "" {
		s.dd.addKey(strings.Clone(p.key), p.receipt, now)
	}
	p.write = p.key != "" || len(p.deltas) > 0 || len(p.newIDs) > 0 || len(p.names) > 0
	return p.write
}

// mergeNames keeps, per client, the name given by the last event.
func mergeNames(names, more []nameAt) []nameAt {
	byClient := make(map[uint32]int, len(names))
	for i, n := range names {
		byClient[n.client] = i
	}
	for _, n := range more {
		i, ok := byClient[n.client]
		switch {
		case !ok:
			byClient[n.client] = len(names)
			names = append(names, n)
		case n.pos > names[i].pos:
			names[i] = n
		}
	}
	return names
}

// writeWAL appends a record to the current segment and fsyncs it. On failure
// it tries to cut the segment back to where it was, so that a partial record
// cannot be replayed after a restart.
func (s *Store) writeWAL(rec []byte) error {
	if _, err := s.wal.WriteAt(rec, s.walOff); err != nil {
		s.wal.Truncate(s.walOff)
		return err
	}
	start := time.Now()
	if err := s.wal.Sync(); err != nil {
		s.wal.Truncate(s.walOff)
		return err
	}
	s.walOff += int64(len(rec))
	s.m.fsyncSeconds.Observe(time.Since(start).Seconds())
	s.m.flushBytes.Observe(float64(len(rec)))
	s.m.walBytes.Add(float64(len(rec)))
	s.walSize += int64(len(rec))
	return nil
}
