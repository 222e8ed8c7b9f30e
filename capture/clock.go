package capture

import (
	"sync/atomic"
	"time"
)

// coarseClock is a wall clock read from memory, set by a goroutine every
// tick. Reading the system clock costs from 20 ns on bare metal to over
// 100 ns on some virtual machines, a good part of the middleware's budget
// per request; usage is counted in hourly buckets, for which a time that is
// a few milliseconds old is as good. Once stopped, it reads the system clock.
type coarseClock struct {
	nanos   atomic.Int64
	stopped atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

// clockTick is how old a coarse time can be.
const clockTick = 5 * time.Millisecond

func startClock() *coarseClock {
	c := &coarseClock{stop: make(chan struct{}), done: make(chan struct{})}
	c.nanos.Store(time.Now().UnixNano())
	go func() {
		defer close(c.done)
		t := time.NewTicker(clockTick)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				c.nanos.Store(now.UnixNano())
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

// Now returns the time, at most about a tick old.
func (c *coarseClock) Now() time.Time {
	if c.stopped.Load() {
		return time.Now()
	}
	return time.Unix(0, c.nanos.Load())
}

// Stop ends the ticking goroutine; Now reads the system clock from then on.
func (c *coarseClock) Stop() {
	if c.stopped.Swap(true) {
		return
	}
	close(c.stop)
	<-c.done
}
