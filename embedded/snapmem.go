package embedded

import "runtime"

// hugeSnapshot is the snapshot size from which its bytes are read into
// memory mapped apart from the Go heap (see snapshotBytes).
const hugeSnapshot = 32 << 20

// snapshotBytes returns n bytes to read a snapshot into. Packed tables keep
// slices of them for the store's life, so a large snapshot goes to memory
// mapped apart from the heap where the system allows, asking for huge pages:
// on the virtual machines this runs on, faulting in 4 KiB pages one by one is
// most of what loading a large snapshot costs. The mapping is released when
// the store is no longer reachable, when nothing can read it any more.
func (s *Store) snapshotBytes(n int) []byte {
	if n >= hugeSnapshot {
		if b, release := mapBytes(n); b != nil {
			runtime.AddCleanup(s, func(release func()) { release() }, release)
			return b
		}
	}
	return make([]byte, n)
}
