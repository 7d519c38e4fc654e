package blobstore

import "os"

// writebackEvery is how many written bytes a writebackFile lets pile up
// before it asks the kernel to start writing them out.
const writebackEvery = 8 << 20

// writebackFile writes to f and, every writebackEvery bytes, starts the
// write-out of what it wrote since the last time (startWriteback). Left
// alone, the kernel would keep the whole file dirty in memory until the
// fsync at the end of Stage and then write it all while Stage waits;
// started early, the disk works while the rest of the file is still
// arriving, and the fsync finds little left to do. Durability is
// unchanged: Stage still fsyncs before it returns.
type writebackFile struct {
	f       *os.File
	written int64 // bytes written so far
	started int64 // bytes whose write-out was started
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.started >= writebackEvery {
		startWriteback(w.f, w.started, w.written-w.started)
		w.started = w.written
	}
	return n, err
}
