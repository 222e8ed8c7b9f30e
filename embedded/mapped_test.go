package embedded

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestOpenMapped checks a file's bytes as packed tables read them: the
// whole file, mapped on Linux, readable as before after its pages are let
// go, and an empty file read as no bytes.
func TestOpenMapped(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 100, 3*pageSize + 17} {
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(i * 7)
		}
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := openMapped(path)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if wantMapped := runtime.GOOS == "linux" && n > 0; m.mapped != wantMapped {
			t.Errorf("%d bytes: mapped %v, want %v", n, m.mapped, wantMapped)
		}
		if !bytes.Equal(m.b, want) {
			t.Fatalf("%d bytes: the mapping differs from the file", n)
		}
		m.evict(0, n)
		if !bytes.Equal(m.b, want) {
			t.Fatalf("%d bytes: after evict, the mapping differs from the file", n)
		}
		if n > 0 {
			if c := m.chunk(1, int64(n-1)); !bytes.Equal(c, want[1:]) || cap(c) != n-1 {
				t.Errorf("%d bytes: chunk(1, %d) is not the file's bytes, capped", n, n-1)
			}
		}
	}
}
