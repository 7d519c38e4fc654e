package http

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"testing"
)

// The gzip content coding is recognised in any case (RFC 9110, 8.4.1).
func TestGzipBodyInAnyCase(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"hashes":[]}`))
	zw.Close()
	for _, enc := range []string{"gzip", "GZIP", "Gzip"} {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(gz.Bytes()))
		r.Header.Set("Content-Encoding", enc)
		got, err := io.ReadAll(bodyReader(httptest.NewRecorder(), r, 1<<20))
		if err != nil || string(got) != `{"hashes":[]}` {
			t.Errorf("Content-Encoding %q: read %q, %v; want the gunzipped JSON", enc, got, err)
		}
	}
}
