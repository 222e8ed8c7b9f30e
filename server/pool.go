package server

import (
	"context"
	"sync"

	"github.com/apiusage/apiusage"
)

// pool runs executions on a fixed number of workers. Each job is reserved
// first (counted against its organization's cap and the global queue bound)
// and then submitted; the queue is as large as the bound, so a reserved job
// is always accepted.
type pool struct {
	jobs      chan poolJob
	maxQueued int
	maxPerOrg int

	mu      sync.Mutex
	closed  bool
	pending int
	perOrg  map[string]int
	// drained is closed once the pool is closed and every reserved job has
	// finished.
	drained     chan struct{}
	drainedOnce sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type poolJob struct {
	org string
	run func(ctx context.Context)
}

func newPool(workers, maxQueued, maxPerOrg int) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pool{
		jobs:      make(chan poolJob, maxQueued),
		maxQueued: maxQueued,
		maxPerOrg: maxPerOrg,
		perOrg:    map[string]int{},
		drained:   make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
	}
	p.wg.Add(workers)
	for range workers {
		go p.work()
	}
	return p
}

func (p *pool) work() {
	defer p.wg.Done()
	for {
		select {
		case j := <-p.jobs:
			func() {
				defer p.release(j.org)
				j.run(p.ctx)
			}()
		case <-p.ctx.Done():
			return
		}
	}
}

// reserve counts one more job of org, or says why it cannot: the pool is
// closing (503), or the organization or the whole pool is at its bound (429).
func (p *pool) reserve(org string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return apiusage.Errorf(apiusage.CodeUnavailable, "The server is shutting down; retry on another instance or later.")
	case p.perOrg[org] >= p.maxPerOrg:
		return apiusage.Errorf(apiusage.CodeTooManyRequests,
			"Your organization has %d queries running, the most it may have at once; retry when one has finished.", p.perOrg[org])
	case p.pending >= p.maxQueued:
		return apiusage.Errorf(apiusage.CodeTooManyRequests, "The server is busy with other queries; retry shortly.")
	}
	p.pending++
	p.perOrg[org]++
	return nil
}

// submit queues a reserved job. It never blocks: the queue holds as many
// jobs as may be reserved.
func (p *pool) submit(org string, run func(ctx context.Context)) {
	p.jobs <- poolJob{org: org, run: run}
}

// release uncounts a finished (or abandoned) reserved job.
func (p *pool) release(org string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending--
	if p.perOrg[org]--; p.perOrg[org] <= 0 {
		delete(p.perOrg, org)
	}
	if p.closed && p.pending == 0 {
		p.drainedOnce.Do(func() { close(p.drained) })
	}
}

// close refuses new jobs and waits for the reserved ones to finish, or for
// ctx; then it stops the workers, cancelling the context of running jobs.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	if p.pending == 0 {
		p.drainedOnce.Do(func() { close(p.drained) })
	}
	p.mu.Unlock()
	select {
	case <-p.drained:
		p.cancel()
		p.wg.Wait()
		return nil
	case <-ctx.Done():
		// Running jobs see their context cancelled and finish as Failed; a
		// store that ignores its context is not waited for.
		p.cancel()
		return ctx.Err()
	}
}
