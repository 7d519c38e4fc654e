//go:build linux && (amd64 || arm64)

package blobstore

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writing out the
// range's dirty pages without waiting for them.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to start writing bytes [off, off+n) of f
// to disk now rather than when the final fsync asks for all of them. It is
// a hint: it makes nothing durable and its failure is of no consequence,
// since the fsync that follows still decides.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
	})
}
