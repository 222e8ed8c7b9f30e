//go:build !linux

package embedded

// mapBytes maps nothing where huge pages cannot be asked for: the caller
// then uses the heap.
func mapBytes(int) ([]byte, func()) { return nil, nil }
