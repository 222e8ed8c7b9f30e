package embedded

import (
	"runtime"
	"testing"
)

// TestSnapshotBytes checks the memory a snapshot is read into: a small one
// on the heap, a large one mapped (on Linux), both of the size asked and
// writable throughout.
func TestSnapshotBytes(t *testing.T) {
	s := openTest(t, "", Options{})
	for _, n := range []int{1 << 10, hugeSnapshot + 12345} {
		b := s.snapshotBytes(n)
		if len(b) != n {
			t.Fatalf("snapshotBytes(%d): %d bytes", n, len(b))
		}
		for i := 0; i < n; i += 4096 {
			b[i] = byte(i)
		}
		b[n-1] = 7
		for i := 0; i < n; i += 4096 {
			if b[i] != byte(i) {
				t.Fatalf("snapshotBytes(%d): byte %d reads %d, want %d", n, i, b[i], byte(i))
			}
		}
	}
	b, release := mapBytes(hugeSnapshot)
	if b == nil {
		if runtime.GOOS == "linux" {
			t.Fatal("mapBytes: no mapping on Linux")
		}
		return // elsewhere the heap serves, by design
	}
	b[0], b[len(b)-1] = 1, 2
	release()
}
