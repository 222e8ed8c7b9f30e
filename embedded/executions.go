package embedded

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/apiusage/apiusage"
)

var _ apiusage.ExecutionRegistry = (*Executions)(nil)

// sweepEvery bounds how often Put looks for expired executions to free: at
// most once a minute, or sooner when the registry has doubled since the last
// sweep, so that memory stays proportional to what is live.
const sweepEvery = time.Minute

// Executions is an in-memory apiusage.ExecutionRegistry. Expired executions
// are not found, and are freed by a sweep that Put runs now and then; there is
// no goroutine to stop.
//
// Executions is safe for concurrent use.
type Executions struct {
	now func() time.Time

	mu        sync.Mutex
	byID      map[string]apiusage.Execution
	lastSweep time.Time
	sizeSwept int
}

// NewExecutions returns an empty registry on the clock now (time.Now when
// nil).
func NewExecutions(now func() time.Time) *Executions {
	if now == nil {
		now = time.Now
	}
	return &Executions{now: now, byID: map[string]apiusage.Execution{}}
}

// Put creates or replaces the execution with x's id. It copies x's slices,
// so that the caller may change its own.
func (e *Executions) Put(ctx context.Context, x apiusage.Execution) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	x = copyExecution(x)
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byID[x.ID] = x
	if now.Sub(e.lastSweep) >= sweepEvery || len(e.byID) > 2*max(e.sizeSwept, 64) {
		for id, y := range e.byID {
			if !now.Before(y.Expires) {
				delete(e.byID, id)
			}
		}
		e.lastSweep, e.sizeSwept = now, len(e.byID)
	}
	return nil
}

// Get returns the execution with the id, or apiusage.ErrNotFound when there
// is none or it has expired (Now at or after Expires).
func (e *Executions) Get(ctx context.Context, id string) (apiusage.Execution, error) {
	if err := ctx.Err(); err != nil {
		return apiusage.Execution{}, err
	}
	now := e.now()
	e.mu.Lock()
	x, ok := e.byID[id]
	if ok && !now.Before(x.Expires) {
		delete(e.byID, id)
		ok = false
	}
	e.mu.Unlock()
	if !ok {
		return apiusage.Execution{}, apiusage.ErrNotFound
	}
	return copyExecution(x), nil
}

// Len returns how many executions are held, expired ones not yet freed
// included.
func (e *Executions) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.byID)
}

func copyExecution(x apiusage.Execution) apiusage.Execution {
	x.Metrics = slices.Clone(x.Metrics)
	x.Columns = slices.Clone(x.Columns)
	return x
}
