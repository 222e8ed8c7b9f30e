package embedded

import (
	"fmt"
	"os"
	"path/filepath"
)

// Cold files.
//
// Packed hourly rollups and user rollups (packed.go) never change again
// but for a late event, so a snapshot does not copy them: a checkpoint writes the chunks
// it packs to a cold file of its own, cold-N.bin for the snapshot numbered
// N, and the snapshot only refers to them ('P' frames: the file and the
// byte range of the hour's frames). Later snapshots refer to the same
// bytes. A checkpoint thus writes what changed since the last one, and its
// cost, the snapshot's size and the WAL it lets grow (see Store.writer)
// follow the warm state, not everything ever recorded.
//
// A cold file is a header frame ('C' string "apiusage cold", uvarint
// version, uvarint number) and 'T' and 'U' frames, as a snapshot's. It is fsynced
// before the snapshot that refers to it is renamed into place, and removed
// once a snapshot in place refers to it no more (late events' rows were
// merged into its hours, rewritten to a newer file, or its hours moved on:
// see below). A cold file of which less than
// half is referred to any more has its live hours copied to the next
// checkpoint's, so that the bytes on disk stay within twice the live ones.
const (
	coldPrefix  = "cold-"
	coldSuffix  = ".bin"
	coldMagic   = "apiusage cold"
	coldVersion = 1
	frameCold   = 'C'
	frameRef    = 'P'
	// frameUsersRef is frameRef for a day's user rollup.
	frameUsersRef = 'V'
)

// refFrame is the kind of the frame that refers to a cold file's frames of
// rows of a kind, and rowsFrame the other way.
var (
	refFrame  = map[byte]byte{frameTable: frameRef, frameUsers: frameUsersRef}
	rowsFrame = map[byte]byte{frameRef: frameTable, frameUsersRef: frameUsers}
)

// tableFrame reports whether a snapshot frame of kind holds or refers to
// rollup rows.
func tableFrame(kind byte) bool {
	switch kind {
	case frameTable, frameSlim, frameUsers, frameRef, frameUsersRef:
		return true
	}
	return false
}

func coldName(seg uint64) string { return fmt.Sprintf("%s%020d%s", coldPrefix, seg, coldSuffix) }

// coldRange is where an hour's frames are in a cold file: bytes [lo, hi).
type coldRange struct{ lo, hi int64 }

// coldRef is what a 'P' frame says: the hour's frames are those of range
// in the cold file numbered seg.
type coldRef struct {
	seg uint64
	coldRange
}

// writeCold writes the cold file of snap, if it has chunks to write: those
// of tables to pack, and of packed tables that are not in a cold file yet
// (read from a snapshot, which keeps only cold hours packed: see
// Store.freezeAll) or are in one mostly dead.
// It sets the reference of every packed table, and fills snap.packs with
// where the chunks it wrote are. It returns the cold files the snapshot
// refers to.
func (snap *snapshot) writeCold(dir string) (refs map[uint64]bool, err error) {
	live := map[*mappedFile]int64{}
	for _, t := range snap.tables {
		if t.packed != nil && t.keys == nil && t.src != nil && t.src.coldSeg != 0 {
			live[t.src] += t.at.hi - t.at.lo
		}
	}
	refs = map[uint64]bool{}
	copied := map[*mappedFile]bool{}
	var sortBuf []uint64 // freeze's, for rows merged
	var w *coldWriter
	defer func() {
		if w != nil && err != nil {
			w.abort()
		}
	}()
	for i := range snap.tables {
		t := &snap.tables[i]
		if t.packed == nil && t.pack == nil {
			continue
		}
		if t.packed != nil && t.keys == nil && t.src != nil && t.src.coldSeg != 0 && 2*live[t.src] >= int64(len(t.src.b)) {
			t.ref = coldRef{seg: t.src.coldSeg, coldRange: t.at}
			refs[t.ref.seg] = true
			continue
		}
		if w == nil {
			if w, err = newColdWriter(dir, snap.seg); err != nil {
				return nil, err
			}
		}
		var p packResult
		lo := w.at()
		switch {
		case t.packed != nil && t.keys != nil:
			// Merged with the rows late events added, and sorted anew.
			f := mergedFrozen(t.packed, omitsOf(t.kind), t.rows, t.keys, t.cnts, &sortBuf)
			p = packResult{t: t.from, was: t.packed, merged: true, gen: t.gen, rows: len(f.keys)}
			for org, r := range orgChunks(f.orgs) {
				ca, err := w.chunk(t.kind, t.hour, func(b []byte) []byte { return appendRows(b, f.keys[r.lo:r.hi], f.cnts[r.lo:r.hi], omitsOf(t.kind)) })
				if err != nil {
					return nil, err
				}
				p.chunks, p.orgs = append(p.chunks, ca), append(p.orgs, org)
			}
			if t.src != nil && t.src.coldSeg != 0 {
				t.src.evict(int(t.at.lo), int(t.at.hi)) // read once, not needed again
			}
		case t.packed != nil:
			p = packResult{t: t.from, was: t.packed}
			for _, c := range t.packed {
				ca, err := w.chunk(t.kind, t.hour, func(b []byte) []byte { return append(b, c...) })
				if err != nil {
					return nil, err
				}
				p.chunks = append(p.chunks, ca)
			}
			copied[t.src] = true
		default:
			p = packResult{t: t.pack, gen: t.gen, rows: len(t.keys)}
			for org, r := range orgChunks(t.orgs) {
				ca, err := w.chunk(t.kind, t.hour, func(b []byte) []byte { return appendRows(b, t.keys[r.lo:r.hi], t.cnts[r.lo:r.hi], omitsOf(t.kind)) })
				if err != nil {
					return nil, err
				}
				p.chunks, p.orgs = append(p.chunks, ca), append(p.orgs, org)
			}
		}
		p.at = coldRange{lo, w.at()}
		t.ref = coldRef{seg: snap.seg, coldRange: p.at}
		refs[snap.seg] = true
		snap.packs = append(snap.packs, p)
	}
	// Every hour of a file copied from was copied (the choice is the
	// file's): the process needs none of its pages any more.
	for src := range copied {
		src.evict(0, len(src.b))
	}
	if w != nil {
		if err := w.finish(); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// coldWriter writes a cold file.
type coldWriter struct {
	*frameWriter
	path string
	f    *os.File
}

func newColdWriter(dir string, seg uint64) (*coldWriter, error) {
	path := filepath.Join(dir, coldName(seg))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	w := &coldWriter{frameWriter: newFrameWriter(f), path: path, f: f}
	w.frame(frameCold)
	w.buf = putString(w.buf, coldMagic)
	w.buf = putUvarint(w.buf, coldVersion)
	w.buf = putUvarint(w.buf, seg)
	if err := w.flush(); err != nil {
		w.abort()
		return nil, err
	}
	return w, nil
}

// chunk writes one chunk of an hour in a 'T' frame (of a day's user rollup
// in a 'U' frame: kind), encoded by enc, and returns where it is in the
// file.
func (w *coldWriter) chunk(kind byte, hour int64, enc func([]byte) []byte) (chunkAt, error) {
	at := w.at()
	w.frame(kind)
	w.buf = putVarint(w.buf, hour)
	pos := len(w.buf)
	w.buf = enc(w.buf)
	c := chunkAt{off: at + int64(pos), n: int64(len(w.buf) - pos)}
	return c, w.flush()
}

// finish makes the file durable; its name is made durable with the
// snapshot's (see snapshot.write).
func (w *coldWriter) finish() error {
	if err := w.w.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	f := w.f
	w.f = nil
	return f.Close()
}

// abort removes a cold file that no snapshot will refer to.
func (w *coldWriter) abort() {
	if w.f != nil {
		w.f.Close()
	}
	os.Remove(w.path)
}

// removeCold deletes the cold files numbered up to seg that refs does not
// hold: the snapshot numbered seg, in place, no longer refers to them, and
// no later snapshot can. Newer ones are a checkpoint's in flight.
func (s *Store) removeCold(refs map[uint64]bool, seg uint64) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		n, ok := parseName(e.Name(), coldPrefix, coldSuffix)
		if !ok || n > seg || refs[n] {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil {
			return err
		}
		removed = true
	}
	if removed {
		return syncDir(s.dir)
	}
	return nil
}

// openCold maps the cold file numbered seg and checks its header.
func (s *Store) openCold(seg uint64) (*mappedFile, error) {
	m, err := openMapped(filepath.Join(s.dir, coldName(seg)))
	if err != nil {
		return nil, err
	}
	payload, _, err := nextFrame(m.b)
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", coldName(seg), err)
	}
	d := decoder{b: payload}
	if d.byte() != frameCold || d.string() != coldMagic || d.uvarint() != coldVersion || d.uvarint() != seg || d.err != nil || len(d.b) != 0 {
		return nil, fmt.Errorf("%s: not a cold file of this store", coldName(seg))
	}
	m.coldSeg = seg
	return m, nil
}
