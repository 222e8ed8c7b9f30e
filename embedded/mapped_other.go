//go:build !linux

package embedded

import "os"

// mapFile maps nothing where it is not implemented: the caller then reads
// the file into the heap.
func mapFile(*os.File, int) ([]byte, func()) { return nil, nil }

// dropPages does nothing: there are no mapped pages.
func dropPages([]byte) {}
