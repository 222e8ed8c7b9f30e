package main

import (
	"bufio"
	"bytes"
	"io"
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

var (
	orgKey    = []byte(`"organizationId":"`)
	clientKey = []byte(`"clientId":"`)
)

// appendLine appends line, renamed, to dst, and reports whether the line is
// of the watched organization.
func (rw *rewriter) appendLine(dst, line []byte) ([]byte, bool) {
	watched := false
	for _, k := range []struct {
		key []byte
		m   map[string]string
		org bool
	}{{orgKey, rw.orgs, true}, {clientKey, rw.clients, false}} {
		i := bytes.Index(line, k.key)
		if i < 0 {
			continue
		}
		start := i + len(k.key)
		end := bytes.IndexByte(line[start:], '"')
		if end < 0 {
			continue
		}
		end += start
		value := line[start:end]
		if to, ok := k.m[string(value)]; ok {
			dst = append(dst, line[:start]...)
			dst = append(dst, to...)
			line = line[end:]
			value = []byte(to)
		} else {
			dst = append(dst, line[:end]...)
			line = line[end:]
		}
		if k.org && rw.watch != "" && string(value) == rw.watch {
			watched = true
		}
	}
	return append(dst, line...), watched
}

// batch is a body of NDJSON events.
type batch struct {
	body    []byte
	events  int
	watched int // events of the watched organization
}

// batcher cuts an NDJSON stream into batches of at most size events,
// renamed.
type batcher struct {
	r    *bufio.Reader
	rw   *rewriter
	size int
}

func newBatcher(r io.Reader, rw *rewriter, size int) *batcher {
	return &batcher{r: bufio.NewReaderSize(r, 4<<20), rw: rw, size: size}
}

// next fills b (reusing its body) with the next batch; it returns io.EOF
// when the stream has no more events.
func (bt *batcher) next(b *batch) error {
	b.body, b.events, b.watched = b.body[:0], 0, 0
	for b.events < bt.size {
		line, err := bt.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return err // a line over 4 MiB is not an event of ours
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var w bool
			b.body, w = bt.rw.appendLine(b.body, line)
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
