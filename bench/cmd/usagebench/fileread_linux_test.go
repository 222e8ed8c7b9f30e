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

// TestBodyBuffer checks the buffers of batches' bodies: empty, of the
// capacity asked at least, writable to the end, starting at a huge page's
// boundary (or the advice could not apply), and unmapped without error.
func TestBodyBuffer(t *testing.T) {
	for _, n := range []int{1, 4 << 20, 4<<20 + 1} {
		b, unmap := bodyBuffer(n)
		if len(b) != 0 || cap(b) < n {
			t.Errorf("bodyBuffer(%d): len %d, cap %d", n, len(b), cap(b))
		}
		b = b[:cap(b)]
		for i := range b {
			b[i] = byte(i)
		}
		if a := addr(b) % hugePage; a != 0 {
			t.Errorf("bodyBuffer(%d) starts %d bytes past a huge page", n, a)
		}
		unmap()
	}
}

// BenchmarkBodyBuffer fills a batch's body of fresh memory, mapped in
// 4 KiB pages (as the Go heap's fresh memory is) or advised to be in huge
// pages (bodyBuffer): the cost of the first touch of each batch an ingest
// makes.
func BenchmarkBodyBuffer(b *testing.B) {
	const n = 4 << 20
	for _, tt := range []struct {
		name string
		huge bool
	}{{"4KiB pages", false}, {"huge pages", true}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			src := make([]byte, 3<<20) // what a batch reads: 3 MB
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				buf, unmap := mapBuffer(n, tt.huge)
				_ = append(buf, src...)
				unmap()
			}
		})
	}
}
