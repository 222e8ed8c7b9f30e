package main

import (
	"slices"
	"time"
)

// summary are the order statistics of repeated timings.
type summary struct {
	N           int
	Median, P99 time.Duration
	Min, Max    time.Duration
}

// summarize returns the statistics of ds. Percentiles are nearest-rank: the
// p99 of fewer than 100 runs is their maximum, never an interpolation below
// a time that was actually seen.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return summary{
		N:      len(s),
		Median: percentile(s, 50),
		P99:    percentile(s, 99),
		Min:    s[0],
		Max:    s[len(s)-1],
	}
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
