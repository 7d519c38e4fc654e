//go:build !linux

package embedded

import "os"

// datasync flushes f to stable storage (fsync: other systems have no
// cheaper call that Go exposes everywhere).
func datasync(f *os.File) error { return f.Sync() }
