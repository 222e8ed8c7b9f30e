package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ingestResult is what posting a file to apiusage did.
type ingestResult struct {
	Events, Batches int64
	// Acked and AckedWatched count the events of 2xx batches (of the
	// watched organization); Sent and SentWatched every batch posted.
	Acked, AckedWatched int64
	Sent, SentWatched   int64
	Elapsed             time.Duration
}

// ingestFile posts the NDJSON file, read the way named (see openWorkload)
// and renamed by rw, in batches of batchSize events from posters concurrent
// connections (each a poster: the requests of api.ingest, written more
// cheaply), and stops at the first error, or when ctx ends, or after limit
// events (0: all). When progress is not nil, it counts the acknowledged
// events as they are.
func ingestFile(ctx context.Context, a *api, path, way string, rw *rewriter, batchSize, posters int, limit int64, progress *atomic.Int64) (ingestResult, error) {
	f, err := openWorkload(path, way)
	if err != nil {
		return ingestResult{}, err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	bt := newBatcher(f, rw, batchSize)
	// One batch ready for each connection is enough: a batch is cut in
	// about a millisecond, and posted in ten or more. Every batch more in
	// the queue is 3 MB more of the generator's memory touched for the
	// first time, which on this VM costs about 20 ms of CPU from the Go
	// heap (see bodyBuffer).
	work := make(chan *batch, posters)
	// The batches, at most one being cut, one queued and one posted for
	// each connection, are made as needed and reused from free; their
	// bodies are unmapped once the posters are done with them.
	most := 2*posters + 1
	free := make(chan *batch, most)
	var unmap []func()
	defer func() {
		for _, u := range unmap {
			u()
		}
	}()
	get := func() *batch {
		select {
		case b := <-free:
			return b
		default:
		}
		if len(unmap) < most {
			body, u := bodyBuffer(batchSize * 400)
			unmap = append(unmap, u)
			return &batch{body: body}
		}
		return <-free // a poster puts its batch back whatever happens
	}
	var (
		res      ingestResult
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
		acked    atomic.Int64
		ackedW   atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	began := time.Now()
	for range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := newPoster(ctx, a)
			if err != nil {
				fail(err)
			} else {
				defer p.Close()
			}
			for b := range work {
				if ctx.Err() == nil {
					if err := p.post(b.body); err != nil {
						fail(err)
					} else {
						acked.Add(int64(b.events))
						ackedW.Add(int64(b.watched))
						if progress != nil {
							progress.Add(int64(b.events))
						}
					}
				}
				free <- b
			}
		}()
	}
	for ctx.Err() == nil && (limit == 0 || res.Sent < limit) {
		b := get()
		err := bt.next(b)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(fmt.Errorf("read %s: %w", path, err))
			break
		}
		res.Sent += int64(b.events)
		res.SentWatched += int64(b.watched)
		res.Batches++
		select {
		case work <- b:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	res.Elapsed = time.Since(began)
	res.Acked, res.AckedWatched = acked.Load(), ackedW.Load()
	res.Events = res.Acked
	return res, firstErr
}
