package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/bits"
	"slices"
)

// rewriter renames organizations and clients in NDJSON event lines.
//
// The workload names its own organizations and clients, but apiusage creates
// organization and client ids itself: a query needs a token of a client in
// the organization asked about, and a client query needs a registered
// client. So the suite creates one apiusage organization per workload
// organization, registers the few clients its queries name, and every
// system, apiusage and the baselines alike, is loaded through the same
// renaming: they hold identical events.
type rewriter struct {
	orgs    map[string]string
	clients map[string]string
	// watch, when set, is an organization (after renaming) whose events
	// are counted, so that the restart check knows how many it sent.
	watch string
}

// renaming is a rewriter compiled for the lines of one stream: its maps as
// tables looked up by a line's bytes, and whether it keeps lengths.
type renaming struct {
	orgs, clients table
	watch         string
	keepsLengths  bool
}

// compile returns rw's renaming as its maps are now.
func (rw *rewriter) compile() *renaming {
	rn := &renaming{orgs: newTable(rw.orgs), clients: newTable(rw.clients), watch: rw.watch, keepsLengths: true}
	for _, m := range []map[string]string{rw.orgs, rw.clients} {
		for from, to := range m {
			if len(from) != len(to) {
				rn.keepsLengths = false
			}
		}
	}
	return rn
}

// table is a map of names to names, for lookups by a line's bytes: open
// addressing on a hash of a value's first and last eight bytes. A Go map
// of strings hashes all 36 bytes of a UUID, and its two lookups a line
// were a tenth of the load generator's time; a table's take less than half
// as long.
type table struct {
	slots []slot // a power of two, at most half used, so probes end
	shift uint8  // 64 minus log2(len(slots)): a hash's top bits index
}

type slot struct {
	from, to string
	used     bool
}

func newTable(m map[string]string) table {
	n := 8
	for n < 2*len(m) {
		n *= 2
	}
	t := table{slots: make([]slot, n), shift: uint8(64 - bits.TrailingZeros(uint(n)))}
	for from, to := range m {
		i := int(hashValue([]byte(from)) >> t.shift)
		for t.slots[i].used {
			i = (i + 1) & (n - 1)
		}
		t.slots[i] = slot{from, to, true}
	}
	return t
}

// hashValue mixes a value's length, first and last eight bytes (all of it
// when shorter): enough for random ids, and any collision is only a probe
// more, since get compares whole values.
func hashValue(v []byte) uint64 {
	var h uint64
	if len(v) >= 8 {
		h = binary.LittleEndian.Uint64(v) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(v[len(v)-8:]), 31)
	} else {
		for _, c := range v {
			h = h<<8 | uint64(c)
		}
	}
	return (h ^ uint64(len(v))) * 0x9e3779b97f4a7c15
}

// get returns v's new name, and whether it has one.
func (t *table) get(v []byte) (string, bool) {
	mask := len(t.slots) - 1
	for i := int(hashValue(v) >> t.shift); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.used {
			return "", false
		}
		if s.from == string(v) {
			return s.to, true
		}
	}
}

var (
	orgKey    = []byte(`"organizationId":"`)
	clientKey = []byte(`"clientId":"`)
)

// The index in orgKey and in clientKey of a byte that does not occur
// before it in the key, nor, in the workload's lines, between where a
// search starts and the key: the 'z' of organizationId (the timestamp's
// zone is a capital Z) and the 'I' of clientId. See index.
const (
	orgKeyRare    = 7
	clientKeyRare = 7
)

// span is where a value is in a line, line[start:end]; start is -1 when
// the line has none.
type span struct{ start, end int }

// hints are where the previous line had the keys: the organization's from
// the line's start, the client's from the end of the organization's value.
// The workload writes every line's keys in the same order with a timestamp
// of fixed length before them, so they are nearly always where the last
// line had them.
type hints struct{ org, client int }

// locate finds the values renamed in line: that of the first
// `"organizationId":"`, up to the next quote; then that of the first
// `"clientId":"` after it (in the whole line when the line has no
// organization's value).
func locate(line []byte, h *hints) (org, client span) {
	org = findValue(line, 0, orgKey, orgKeyRare, &h.org)
	from := 0
	if org.start >= 0 {
		from = org.end
	}
	return org, findValue(line, from, clientKey, clientKeyRare, &h.client)
}

func findValue(line []byte, from int, key []byte, rare int, hint *int) span {
	s := line[from:]
	i := index(s, key, rare, hint)
	if i < 0 {
		return span{-1, -1}
	}
	start := i + len(key)
	end := bytes.IndexByte(s[start:], '"')
	if end < 0 {
		return span{-1, -1}
	}
	return span{from + start, from + start + end}
}

// index is bytes.Index(s, key), found without a search when key is at
// *hint, as on the line before: key[rare] is a byte that does not occur in
// key[:rare], and key at *hint is the first in s when s has no such byte
// before *hint+rare, since a key starting earlier would have one there.
// That check is an IndexByte of a few tens of bytes, where a search even
// of a window up to the hint (bytes.Index of a key this long compares it
// at every position) cost about three times as much. When the key is not
// at *hint, or may be earlier, s is searched and *hint becomes where the
// key is.
func index(s, key []byte, rare int, hint *int) int {
	if h := *hint; h+len(key) <= len(s) && string(s[h:h+len(key)]) == string(key) &&
		bytes.IndexByte(s[:h+rare], key[rare]) < 0 {
		return h
	}
	i := bytes.Index(s, key)
	if i >= 0 {
		*hint = i
	}
	return i
}

// appendLine appends line, renamed, to dst, and reports whether the line is
// of the watched organization. h is updated for the next line.
func (rn *renaming) appendLine(dst, line []byte, h *hints) ([]byte, bool) {
	org, client := locate(line, h)
	watched := false
	prev := 0
	for _, f := range [2]struct {
		span
		t   *table
		org bool
	}{{org, &rn.orgs, true}, {client, &rn.clients, false}} {
		if f.start < 0 {
			continue
		}
		value := line[f.start:f.end]
		to, renamed := f.t.get(value)
		if renamed {
			dst = append(dst, line[prev:f.start]...)
			dst = append(dst, to...)
			prev = f.end
		}
		if f.org && rn.watch != "" {
			if renamed {
				watched = to == rn.watch
			} else {
				watched = string(value) == rn.watch
			}
		}
	}
	return append(dst, line[prev:]...), watched
}

// renameInPlace renames line where it is, as appendLine would append it,
// and reports whether the line is of the watched organization. Every
// renaming must keep the value's length.
func (rn *renaming) renameInPlace(line []byte, h *hints) bool {
	org, client := locate(line, h)
	watched := false
	if org.start >= 0 {
		v := line[org.start:org.end]
		if to, ok := rn.orgs.get(v); ok {
			mustCopy(v, to)
		}
		watched = rn.watch != "" && string(v) == rn.watch
	}
	if client.start >= 0 {
		v := line[client.start:client.end]
		if to, ok := rn.clients.get(v); ok {
			mustCopy(v, to)
		}
	}
	return watched
}

func mustCopy(dst []byte, src string) {
	if len(dst) != len(src) {
		panic("usagebench: a renaming in place changes a value's length")
	}
	copy(dst, src)
}

// batch is a body of NDJSON events.
type batch struct {
	body    []byte
	events  int
	watched int // events of the watched organization
}

// batcher cuts an NDJSON stream into batches of at most size events,
// renamed. Blank lines are dropped and a last line without a newline gets
// one.
//
// When the renaming keeps lengths, as apiusage's UUIDs replace the
// workload's, the stream is read straight into a batch's body and renamed
// there: the bytes of a batch are copied by read from the file, and not
// again by the load generator. The bytes read past a batch's last line are
// carried to the next; reads are of readChunk bytes, so that what is
// carried stays small next to a batch. Otherwise each line is copied,
// renamed, from a buffered reader.
type batcher struct {
	rn   *renaming
	size int
	h    hints

	inPlace bool
	src     io.Reader
	chunk   int    // bytes asked of src at a time
	carry   []byte // bytes read past the previous batch's last line
	srcErr  error  // src's error (io.EOF at its end), once it gave one

	r *bufio.Reader // when not in place
}

// readChunk is how many bytes a batcher reading in place asks for at a
// time: a few percent of a 3 MB batch to carry, 24 reads a batch.
const readChunk = 128 << 10

func newBatcher(r io.Reader, rw *rewriter, size int) *batcher {
	bt := &batcher{rn: rw.compile(), size: size}
	if bt.rn.keepsLengths {
		bt.inPlace, bt.src, bt.chunk = true, r, readChunk
	} else {
		bt.r = bufio.NewReaderSize(r, 4<<20)
	}
	return bt
}

// next fills b (reusing its body) with the next batch; it returns io.EOF
// when the stream has no more events.
func (bt *batcher) next(b *batch) error {
	if bt.inPlace {
		return bt.nextInPlace(b)
	}
	b.body, b.events, b.watched = b.body[:0], 0, 0
	for b.events < bt.size {
		line, err := bt.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return err // a line over 4 MiB is not an event of ours
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var w bool
			b.body, w = bt.rn.appendLine(b.body, line, &bt.h)
			if line[len(line)-1] != '\n' {
				b.body = append(b.body, '\n')
			}
			b.events++
			if w {
				b.watched++
			}
		}
		if err == io.EOF {
			if b.events == 0 {
				return io.EOF
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (bt *batcher) nextInPlace(b *batch) error {
	body := append(b.body[:0], bt.carry...)
	b.events, b.watched = 0, 0
	// body[:w] is the batch so far; body[r:] has not been looked at.
	// w < r only after a blank line, which is dropped.
	w, r := 0, 0
	for b.events < bt.size {
		var line []byte
		if nl := bytes.IndexByte(body[r:], '\n'); nl >= 0 {
			line = body[r : r+nl+1]
		} else if bt.srcErr == nil {
			body = slices.Grow(body, bt.chunk)
			n, err := bt.src.Read(body[len(body) : len(body)+bt.chunk])
			body = body[:len(body)+n]
			bt.srcErr = err
			continue
		} else if bt.srcErr != io.EOF {
			return bt.srcErr
		} else if r < len(body) {
			line = body[r:] // the last line, without a newline
		} else {
			break
		}
		at := r
		r += len(line)
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if bt.rn.renameInPlace(line, &bt.h) {
			b.watched++
		}
		if w != at {
			copy(body[w:], line)
		}
		w += len(line)
		b.events++
		if line[len(line)-1] != '\n' {
			// Only the stream's last line, so r is len(body): nothing
			// is left to overwrite.
			body = append(body[:w], '\n')
			w++
			r = len(body)
		}
	}
	bt.carry = append(bt.carry[:0], body[r:]...)
	b.body = body[:w]
	if b.events == 0 {
		return io.EOF
	}
	return nil
}

// renamingReader is the whole stream renamed, for the baselines' loads.
type renamingReader struct {
	bt  *batcher
	b   batch
	off int
	err error
}

func newRenamingReader(r io.Reader, rw *rewriter) *renamingReader {
	return &renamingReader{bt: newBatcher(r, rw, 4096)}
}

func (rr *renamingReader) Read(p []byte) (int, error) {
	for rr.off == len(rr.b.body) {
		if rr.err != nil {
			return 0, rr.err
		}
		rr.off = 0
		rr.err = rr.bt.next(&rr.b)
		if rr.err != nil {
			rr.b.body = rr.b.body[:0]
		}
	}
	n := copy(p, rr.b.body[rr.off:])
	rr.off += n
	return n, nil
}
