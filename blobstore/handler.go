package blobstore

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// Handler serves GET and HEAD {prefix}{cid}, e.g. with prefix "/ipfs/" the
// path an IPFS gateway serves, so a microservice configured with a gateway
// URL fetches uploads unchanged. One trailing slash is tolerated; the query
// string (a gateway's ?filename=) is ignored.
//
// A blob is served with http.ServeContent: range requests, Content-Length,
// Content-Type application/octet-stream, the CID as ETag (so If-None-Match
// answers 304) and immutable cache headers, since a CID's content never
// changes. Errors are JSON {"error": "..."}: 400 for a path that is not a
// CID, 404 for a blob the store does not have, 405 for other methods, and
// ServeContent's own 412 and 416 (see jsonErrors).
func (s *Store) Handler(prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "Method not allowed on this route.") // as every route answers
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		c, err := ParseCID(strings.TrimSuffix(name, "/"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		f, _, err := s.Open(c)
		if errors.Is(err, ErrNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal server error")
			return
		}
		defer f.Close()

		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", `"`+c.String()+`"`)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		// A zero modification time: no Last-Modified, the ETag decides.
		http.ServeContent(&jsonErrors{ResponseWriter: w}, r, "", time.Time{}, f)
	})
}

// jsonErrors turns the errors http.ServeContent writes itself (416 for a
// range outside the blob, 412 for a failed If-Match) into the handler's
// JSON error body, where ServeContent writes plain text or nothing. Its
// headers (Content-Range on a 416) stay.
type jsonErrors struct {
	http.ResponseWriter
	failed bool // an error was written: ServeContent's own body is dropped
}

func (j *jsonErrors) WriteHeader(code int) {
	if code < 400 {
		j.ResponseWriter.WriteHeader(code)
		return
	}
	j.failed = true
	j.Header().Del("Content-Length")
	writeError(j.ResponseWriter, code, strings.ToLower(http.StatusText(code)))
}

func (j *jsonErrors) Write(b []byte) (int, error) {
	if j.failed {
		return len(b), nil
	}
	return j.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's (sendfile on a plain connection):
// ServeContent copies the blob through it.
func (j *jsonErrors) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := j.ResponseWriter.(io.ReaderFrom); ok && !j.failed {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{j}, r)
}

func (j *jsonErrors) Unwrap() http.ResponseWriter { return j.ResponseWriter }

// writeError answers with the handler's JSON error body.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
