//go:build !(linux && (amd64 || arm64))

package blobstore

import "os"

// startWriteback does nothing here: only Linux has sync_file_range, and
// on 32-bit Linux its 64-bit offsets need a different calling convention.
// The final fsync writes everything out.
func startWriteback(f *os.File, off, n int64) {}
