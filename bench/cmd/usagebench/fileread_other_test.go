//go:build !linux

package main

// onDisk reports false: O_DIRECT is Linux's.
func onDisk(string) bool { return false }
