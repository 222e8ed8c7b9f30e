package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// readDirs are where the reading tests write their files: the test's
// temporary directory (a disk on the machines this suite runs on, where
// O_DIRECT is taken) and /dev/shm (tmpfs, where it may be refused), when
// there is one.
func readDirs(t *testing.T) map[string]string {
	t.Helper()
	dirs := map[string]string{"tempdir": t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "usagebench-read")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs["shm"] = d
		}
	}
	for name, d := range dirs {
		t.Logf("%s: %s, on a disk taking O_DIRECT: %v", name, d, onDisk(d))
	}
	return dirs
}

// awkwardSizes are file sizes around O_DIRECT's alignment and the
// read-ahead's buffers.
var awkwardSizes = []int{0, 1, 4095, 4096, 4097, 3<<20 + 3, directBufferSize*directBuffers*2 + 3}

func writeRandomFile(t *testing.T, dir string, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	path := filepath.Join(dir, "f"+strconv.Itoa(size))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// readAll reads r to its end in reads of an odd size, as no caller would
// align them.
func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var got bytes.Buffer
	if _, err := io.CopyBuffer(&got, struct{ io.Reader }{r}, make([]byte, 100_003)); err != nil {
		t.Fatal(err)
	}
	return got.Bytes()
}

func TestOpenWorkloadYieldsTheFilesBytes(t *testing.T) {
	for dirName, dir := range readDirs(t) {
		for _, size := range awkwardSizes {
			path, want := writeRandomFile(t, dir, size)
			for _, way := range []string{readDirect, readDropBehind, readPlain} {
				t.Run(dirName+"/"+way+"/"+strconv.Itoa(size), func(t *testing.T) {
					r, err := openWorkload(path, way)
					if err != nil {
						t.Fatal(err)
					}
					got := readAll(t, r)
					if err := r.Close(); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("read %d bytes, not the file's %d (first difference at %d)", len(got), len(want), firstDifference(got, want))
					}
					if ra, ok := r.(*readAhead); ok && onDisk(dir) && size >= directAlign && ra.src.directBytes == 0 {
						t.Errorf("on %s no byte was read with O_DIRECT", dir)
					}
				})
			}
		}
	}
}

// TestDropBehindDropsAnywhere drops the pages read after every few bytes,
// at offsets that are not a page's: the reader still yields the file.
func TestDropBehindDropsAnywhere(t *testing.T) {
	dir := t.TempDir()
	for _, size := range awkwardSizes {
		path, want := writeRandomFile(t, dir, size)
		for _, every := range []int64{1, 4097, 1 << 20} {
			r, err := openDropBehind(path)
			if err != nil {
				t.Fatal(err)
			}
			r.every = every
			got := readAll(t, r)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d, a drop every %d bytes: read %d bytes, not the file's (first difference at %d)", size, every, len(got), firstDifference(got, want))
			}
		}
	}
}

// TestReadAheadFallsBack reads through the page cache where O_DIRECT is not
// possible: no O_DIRECT descriptor (a file system refusing it), and
// buffers of unaligned lengths.
func TestReadAheadFallsBack(t *testing.T) {
	dir := t.TempDir()
	for _, size := range awkwardSizes {
		path, want := writeRandomFile(t, dir, size)
		for _, tt := range []struct {
			name     string
			noDirect bool
			buf, n   int
		}{
			{"without O_DIRECT", true, directBufferSize, directBuffers},
			{"unaligned buffers", false, 3*directAlign + 5, 2},
			{"one small buffer", false, directAlign, 1},
		} {
			t.Run(tt.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				f, err := openDirectFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if tt.noDirect {
					f.closeDirect()
				}
				r := newReadAhead(f, tt.buf, tt.n)
				got := readAll(t, r)
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("read %d bytes, not the file's %d (first difference at %d)", len(got), len(want), firstDifference(got, want))
				}
				if tt.noDirect && f.directBytes != 0 {
					t.Errorf("read %d bytes with O_DIRECT, want none", f.directBytes)
				}
			})
		}
	}
}

// TestReadAheadClosesEarly closes a reader in the middle of the file, as an
// ingest stopped after some events does.
func TestReadAheadClosesEarly(t *testing.T) {
	path, want := writeRandomFile(t, t.TempDir(), directBufferSize*directBuffers*2+3)
	for _, read := range []int{0, 1, directBufferSize + 1} {
		r, err := openWorkload(path, readDirect)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, read)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[:read]) {
			t.Errorf("the first %d bytes differ from the file's", read)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestReadFlag checks that --read takes each way openWorkload knows and
// refuses any other.
func TestReadFlag(t *testing.T) {
	for _, way := range append(slices.Clone(readWays), "mmap") {
		_, err := parseFlags([]string{"usagebench", "--apiusage", "x", "--read", way, "quick"}, io.Discard)
		if known := slices.Contains(readWays, way); (err == nil) != known {
			t.Errorf("--read %s: err %v, known way %v", way, err, known)
		}
	}
}
