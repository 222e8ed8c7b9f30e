package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
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
	// oldSnap is set when the snapshot Open loaded is of an older
	// version: the writer checkpoints at its first turn, and Close even
	// with nothing written, so that the state derived from it is not
	// derived again at every Open.
	oldSnap bool

	// packBits bounds the packed sort keys of queries, and maxDense the
	// dense arrays they find groups in: 64 and maxDenseSlots, but in tests
	// of the other paths.
	packBits int
	maxDense int
	// packRows is packRows but in tests, and parRows parRows.
	packRows int
	parRows  int
	// rowSets holds one result's rows for reuse (see rowset.go).
	rowSets chan *apiusage.RowSet

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
		parRows:  parRows,
		rowSets:  make(chan *apiusage.RowSet, 1),
		scratch:  make(chan *scratch, scratches),
	}
	for f := range s.logged {
		s.logged[f] = 1 // id 0, the empty string, is implicit
	}
	r := recovery{startedAt: time.Now()}
	if err := s.recover(&r); err != nil {
		if s.wal != nil {
			s.wal.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("recover %s: %w", dir, err)
	}
	start := time.Now()
	s.freezeAll()
	r.freezeTime = time.Since(start)
	s.logRecovery(&r)
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
	// users are the deltas of the user rollup, their hour field the day.
	users      []delta
	usersIndex *deltaIndex
	ids        []idEvent
	names      []nameAt
	size       int // an upper bound of its encoded size, dictionary included
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

// unknownID marks a string without a dictionary id yet.
const unknownID = math.MaxUint32

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
		if s.broken == nil && !s.ckRunning && (s.oldSnap || s.walSize >= bound && s.walSize-s.ckFailed >= bound/2) {
			s.oldSnap = false
			s.startCheckpoint()
		} else if s.broken == nil && !s.ckRunning && s.st.newDay && s.walSize-s.ckFailed >= s.ckBytes/16 {
			// A new day began, and the days that went cold may hold many
			// rows to pack (see packed.go): checkpoint early when they do.
			s.st.newDay = false
			if s.st.coldUnpacked() >= s.packRows {
				s.startCheckpoint()
			}
		} else if s.broken == nil && !s.ckRunning && s.st.lateRows >= s.packRows && (s.ckFailed == 0 || s.walSize-s.ckFailed >= s.ckBytes/16) {
			// Late events (a backfill) added many rows beside packed
			// chunks: merging them bounds the memory they take. The
			// count starts again with each checkpoint, so a stream of
			// late events checkpoints once per packRows of them.
			s.startCheckpoint()
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
	for _, d := range p.users {
		st.addUsers(d)
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
