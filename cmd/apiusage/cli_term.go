package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// spinnerFrames are drawn in turn while waiting.
var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// spinner shows that the command is waiting, with the time elapsed, on a
// terminal. Its zero value is a spinner that draws nothing.
type spinner struct {
	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

// startSpinner starts a spinner on stderr when stderr is a terminal: a pipe
// or a log file gets no control characters.
func (c *cli) startSpinner(ctx context.Context) *spinner {
	s := &spinner{}
	if !c.terminal(c.stderr) {
		return s
	}
	s.done = make(chan struct{})
	start := c.now()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for frame := 0; ; frame++ {
			select {
			case <-s.done:
				fmt.Fprint(c.stderr, "\r\033[K")
				return
			case <-ctx.Done():
				fmt.Fprint(c.stderr, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(c.stderr, "\r"+spinnerLine(frame, c.now().Sub(start)))
			}
		}
	}()
	return s
}

// spinnerLine is one drawing of the spinner.
func spinnerLine(frame int, elapsed time.Duration) string {
	return fmt.Sprintf("%s waiting for the result %.1fs", spinnerFrames[frame%len(spinnerFrames)], elapsed.Seconds())
}

// stop erases the spinner; it may be called any number of times.
func (s *spinner) stop() {
	s.once.Do(func() {
		if s.done != nil {
			close(s.done)
			s.wg.Wait()
		}
	})
}

// progress draws an ingest's progress on a terminal, at most ten times a
// second. Its zero value draws nothing.
type progress struct {
	w    io.Writer
	now  func() time.Time
	last time.Time
	on   bool
}

// draw redraws the bar unless it was drawn less than 100ms ago (or force).
func (p *progress) draw(force bool, line func() string) {
	if !p.on {
		return
	}
	now := p.now()
	if !force && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	fmt.Fprint(p.w, "\r\033[K"+line())
}

// clear erases the bar.
func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// progressLine is one drawing of an ingest's progress: a bar of the bytes
// read, the events sent and their rate.
func progressLine(name string, done, total int64, events int, elapsed time.Duration) string {
	const width = 24
	frac := 1.0
	if total > 0 {
		frac = min(1, float64(done)/float64(total))
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(events) / s
	}
	return fmt.Sprintf("%s [%s] %3.0f%% %d events %.0f events/s", name, bar, frac*100, events, rate)
}
