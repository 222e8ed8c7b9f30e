//go:build !linux

package main

import (
	"errors"
	"os"
)

// errDirectRefused is a read's error when the file system does not take
// O_DIRECT reads.
var errDirectRefused = errors.New("O_DIRECT refused")

// openDirect returns -1: O_DIRECT is Linux's, so the file is read through
// the page cache.
func openDirect(string) int { return -1 }

func preadDirect(int, []byte, int64) (int, error) { return 0, errDirectRefused }

func closeFD(int) {}

func openDropBehind(path string) (*dropBehind, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &dropBehind{f: f}, nil // nothing to drop with
}

func fadviseDontNeed(*os.File, int64, int64) {}

// fitsCache reports false: without Linux's sysinfo the memory is not known.
func fitsCache(int64) bool { return false }

// bodyBuffer returns an empty buffer of n bytes' capacity from the Go heap.
func bodyBuffer(n int) ([]byte, func()) { return make([]byte, 0, n), func() {} }
