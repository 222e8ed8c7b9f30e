package main

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// onDisk reports whether dir is on ext4 or XFS, which take O_DIRECT reads.
func onDisk(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.EXT4_SUPER_MAGIC || st.Type == unix.XFS_SUPER_MAGIC
}

// TestDropBehindOnlyFilesLargerThanHalfTheMemory drops the pages of a
// (sparse) file of more than half the machine's memory, and keeps those of
// a small one cached.
func TestDropBehindOnlyFilesLargerThanHalfTheMemory(t *testing.T) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	half := int64(uint64(si.Totalram) * uint64(si.Unit) / 2)
	for _, tt := range []struct {
		name string
		size int64
		want int64
	}{
		{"half the memory", half, 0},
		{"more than half", half + 1, dropEvery},
		{"small", 4097, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sparse")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(tt.size); err != nil {
				t.Skipf("no sparse file of %d bytes here: %v", tt.size, err)
			}
			f.Close()
			d, err := openDropBehind(path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.every != tt.want {
				t.Errorf("drops every %d bytes, want %d", d.every, tt.want)
			}
		})
	}
}
