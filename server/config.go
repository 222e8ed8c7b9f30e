package server

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Config tunes a Server. A zero field takes its value from DefaultConfig, so
// Config{} is a working configuration.
type Config struct {
	// TokenTTL is how long an access token is valid.
	TokenTTL time.Duration
	// ResultTTL is how long an execution and its results are kept after it
	// starts and again after it finishes.
	ResultTTL time.Duration
	// Workers is how many executions run at once, across organizations.
	Workers int
	// MaxQueued bounds the executions accepted and not yet finished, across
	// organizations, so that a flood of queries cannot grow memory without
	// bound; past it a query is answered 429.
	MaxQueued int
	// MaxRunningPerOrg bounds the executions one organization may have
	// queued or running; past it a query is answered 429, so that one tenant
	// cannot occupy every worker.
	MaxRunningPerOrg int
	// MaxIngestBodyBytes bounds the body of POST /api/v2/usage/events.
	MaxIngestBodyBytes int64
	// MaxIngests bounds the batches of POST /api/v2/usage/events read and
	// stored at once, and with them the memory their bodies and events
	// take (up to MaxIngestBodyBytes each). A batch past it waits, unread,
	// for up to IngestWait, and is then answered 429.
	MaxIngests int
	// IngestWait is how long a batch past MaxIngests waits for its turn.
	// Negative: it is answered 429 at once.
	IngestWait time.Duration
	// IngestReadTimeout is how long reading a batch's body may take once
	// it has its turn (the request is given IngestWait more, for the
	// wait); past it the batch is answered 400 and its turn freed, so that
	// slow senders cannot hold the turns. Negative: no bound.
	IngestReadTimeout time.Duration
	// MaxBodyBytes bounds every other request body.
	MaxBodyBytes int64
	// MaxBatchEvents bounds the events of one ingestion batch.
	MaxBatchEvents int
	// MaxResultRows bounds the rows of an organization or client query; an
	// execution with more fails, asking for a narrower query. (A simple
	// search keeps its first 20,000 rows, as the contract says.)
	MaxResultRows int
	// ResultMemory bounds the bytes the results of complete executions
	// take, in all. Past it the oldest results of the organizations holding
	// more than their share (ResultMemory divided by the organizations
	// holding results) are dropped, and their polls get a 404 that says so
	// (see resultStore for the policy).
	ResultMemory int64
	// PollWait is how long a poll of an execution still running on this
	// server waits for it to finish before it answers Running: a client
	// then gets the result as soon as it is ready, in one round trip,
	// rather than at a later poll, and polls less. Negative: a poll
	// answers at once.
	PollWait time.Duration
	// HashCost is the bcrypt cost of client secrets.
	HashCost int
	// Now tells the time: of tokens, executions and summaries. Tests inject
	// it.
	Now func() time.Time
}

// DefaultConfig returns the configuration New uses for the zero fields of
// its Config.
func DefaultConfig() Config {
	return Config{
		TokenTTL:           24 * time.Hour,
		ResultTTL:          time.Hour,
		Workers:            2 * runtime.GOMAXPROCS(0),
		MaxQueued:          4096,
		MaxRunningPerOrg:   8,
		MaxIngestBodyBytes: 32 << 20,
		MaxIngests:         max(4, 2*runtime.GOMAXPROCS(0)),
		IngestWait:         10 * time.Second,
		IngestReadTimeout:  time.Minute,
		MaxBodyBytes:       1 << 20,
		MaxBatchEvents:     100_000,
		MaxResultRows:      1_000_000,
		ResultMemory:       256 << 20,
		PollWait:           time.Second,
		HashCost:           bcrypt.DefaultCost,
		Now:                time.Now,
	}
}

// ingestReadTime is the read deadline of an ingest request, from its
// start: IngestReadTimeout after the longest wait for a turn, or none (0)
// when IngestReadTimeout is negative.
func (c Config) ingestReadTime() time.Duration {
	if c.IngestReadTimeout <= 0 {
		return 0
	}
	return max(c.IngestWait, 0) + c.IngestReadTimeout
}

// withDefaults returns c with every zero field set from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TokenTTL == 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = d.ResultTTL
	}
	if c.Workers == 0 {
		c.Workers = d.Workers
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = d.MaxQueued
	}
	if c.MaxRunningPerOrg == 0 {
		c.MaxRunningPerOrg = d.MaxRunningPerOrg
	}
	if c.MaxIngestBodyBytes == 0 {
		c.MaxIngestBodyBytes = d.MaxIngestBodyBytes
	}
	if c.MaxIngests == 0 {
		c.MaxIngests = d.MaxIngests
	}
	if c.IngestWait == 0 {
		c.IngestWait = d.IngestWait
	}
	if c.IngestReadTimeout == 0 {
		c.IngestReadTimeout = d.IngestReadTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = d.MaxBatchEvents
	}
	if c.MaxResultRows == 0 {
		c.MaxResultRows = d.MaxResultRows
	}
	if c.ResultMemory == 0 {
		c.ResultMemory = d.ResultMemory
	}
	if c.PollWait == 0 {
		c.PollWait = d.PollWait
	}
	if c.HashCost == 0 {
		c.HashCost = d.HashCost
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Validate reports every field of c that is out of range, joined. Zero
// fields are valid: they take their defaults.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	if c.TokenTTL < 0 {
		errs = append(errs, fmt.Errorf("token TTL must be positive, got %s", c.TokenTTL))
	}
	if c.TokenTTL > 0 && c.TokenTTL < time.Second {
		errs = append(errs, fmt.Errorf("token TTL must be at least a second, got %s", c.TokenTTL))
	}
	if c.ResultTTL < 0 {
		errs = append(errs, fmt.Errorf("result TTL must be positive, got %s", c.ResultTTL))
	}
	positive("workers", int64(c.Workers))
	positive("max queued", int64(c.MaxQueued))
	positive("max running per organization", int64(c.MaxRunningPerOrg))
	positive("max ingest body bytes", c.MaxIngestBodyBytes)
	positive("max ingests", int64(c.MaxIngests))
	positive("max body bytes", c.MaxBodyBytes)
	positive("max batch events", int64(c.MaxBatchEvents))
	positive("max result rows", int64(c.MaxResultRows))
	positive("result memory", c.ResultMemory)
	if c.HashCost != 0 && (c.HashCost < bcrypt.MinCost || c.HashCost > bcrypt.MaxCost) {
		errs = append(errs, fmt.Errorf("hash cost must be from %d to %d, got %d", bcrypt.MinCost, bcrypt.MaxCost, c.HashCost))
	}
	if c.MaxQueued > 0 && c.MaxRunningPerOrg > c.MaxQueued {
		errs = append(errs, errors.New("max running per organization must not exceed max queued"))
	}
	return errors.Join(errs...)
}
