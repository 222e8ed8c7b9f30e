//go:build !unix

package embedded

// cpuTime is 0 where getrusage is not available.
func cpuTime() int64 { return 0 }
