// Package blobs adapts the temporary content-addressed store to the string
// CIDs the engine and the HTTP layer use.
package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/blobstore"
	sluicehttp "github.com/sluicehq/sluice/http"
)

// Adapter wraps a blobstore.Store.
type Adapter struct {
	Store *blobstore.Store
}

// Stage stores r durably as a pending file, within limit bytes, without
// hashing it, and returns the pending id.
func (a Adapter) Stage(ctx context.Context, r io.Reader, limit int64) (string, int64, error) {
	body := &bodyReader{r: r}
	id, n, err := a.Store.Stage(ctx, body, limit)
	switch {
	case errors.Is(err, blobstore.ErrTooLarge):
		return "", n, fmt.Errorf("%w: %v", sluicehttp.ErrBlobTooLarge, err)
	case err != nil && body.err != nil:
		// The client's body failed, not the store: it ended before its
		// closing boundary, broke the multipart framing, or stopped
		// arriving. That is bad input, whatever the store made of it.
		return "", n, sluice.Errorf(sluice.ErrInvalid, "Malformed multipart body: the upload was cut short (%v).", body.err)
	case err != nil:
		return "", n, fmt.Errorf("%w: store the upload: %v", sluice.ErrUnavailable, err)
	}
	return id, n, nil
}

// bodyReader remembers the error of the upload's body, if reading it
// failed: a failing Stage is then the client's doing.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Seal hashes a pending file, makes it available under its CID and
// returns the CID.
func (a Adapter) Seal(ctx context.Context, pending string) (string, error) {
	c, err := a.Store.Seal(ctx, pending)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

// Discard removes a pending file.
func (a Adapter) Discard(pending string) error { return a.Store.Discard(pending) }

// SweepPending removes the pending files found at start-up that keep does
// not claim.
func (a Adapter) SweepPending(keep func(pending string) bool) (int, error) {
	return a.Store.SweepPending(keep)
}

// Release removes a stored file after a retention period.
func (a Adapter) Release(cid string, after time.Duration) {
	if c, err := blobstore.ParseCID(cid); err == nil {
		a.Store.Release(c, after)
	}
}

// Keep cancels a stored file's pending release.
func (a Adapter) Keep(cid string) {
	if c, err := blobstore.ParseCID(cid); err == nil {
		a.Store.Keep(c)
	}
}

// Has reports whether the store holds the file with this CID.
func (a Adapter) Has(cid string) bool {
	c, err := blobstore.ParseCID(cid)
	return err == nil && a.Store.Has(c)
}

// List returns the CIDs of every stored file.
func (a Adapter) List() ([]string, error) {
	cids, err := a.Store.List()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(cids))
	for i, c := range cids {
		out[i] = c.String()
	}
	return out, nil
}

// Open opens a stored file by its CID.
func (a Adapter) Open(cid string) (actors.BlobFile, int64, error) {
	c, err := blobstore.ParseCID(cid)
	if err != nil {
		return nil, 0, err
	}
	f, n, err := a.Store.Open(c)
	if err != nil {
		return nil, 0, err
	}
	return f, n, nil
}
