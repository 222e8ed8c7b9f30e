package main

import "golang.org/x/sys/unix"

// onDisk reports whether dir is on ext4 or XFS, which take O_DIRECT reads.
func onDisk(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.EXT4_SUPER_MAGIC || st.Type == unix.XFS_SUPER_MAGIC
}
