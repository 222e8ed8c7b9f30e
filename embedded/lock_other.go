//go:build !unix

package embedded

import "os"

// lockDir opens the lock file; without flock, exclusion is the operator's
// job on this platform.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(dir+"/LOCK", os.O_CREATE|os.O_RDWR, 0o600)
}
