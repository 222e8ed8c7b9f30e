package embedded

import "syscall"

// mapBytes maps n bytes of anonymous memory, advised to use transparent huge
// pages, and returns them with the function that unmaps them; nil when the
// mapping fails.
func mapBytes(n int) ([]byte, func()) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil
	}
	_ = syscall.Madvise(b, 14) // MADV_HUGEPAGE; only advice
	return b, func() { syscall.Munmap(b) }
}
