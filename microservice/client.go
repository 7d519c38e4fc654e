package microservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice"
)

// maxReply bounds a microservice's reply body.
const maxReply = 4 << 20

// RemoteError is a microservice's error reply, relayed to the client: a
// 4xx Status is relayed with Message, anything else (a 5xx, a reply that
// is not what the protocol says, no reply at all) as 502 Bad Gateway.
type RemoteError struct {
	Status  int
	Message string
	Body    json.RawMessage
	// Err is the transport error when the microservice did not answer
	// (it wraps sluice.ErrUnavailable); nil for a reply.
	Err error
}

func (e *RemoteError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("storage backend: %s: %v", e.Message, e.Err)
	}
	return fmt.Sprintf("storage backend answered %d: %s", e.Status, e.Message)
}

// Unwrap gives the transport error, if any.
func (e *RemoteError) Unwrap() error { return e.Err }

// unreachable is the error for a microservice that did not answer (in
// time, or at all): a bad gateway for the client.
func unreachable(err error) *RemoteError {
	return &RemoteError{Status: http.StatusBadGateway, Message: "The storage backend did not answer.",
		Err: fmt.Errorf("%w: %v", sluice.ErrUnavailable, err)}
}

// FileRef is one file handed to a microservice's upload.
type FileRef struct {
	IPFSURI     string  `json:"ipfs_uri"`
	ContentType *string `json:"content_type"`
}

// Client calls microservices with the Ocean backend's protocol. Every call
// is bounded by Timeout.
type Client struct {
	HTTP    *http.Client
	Timeout time.Duration
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// maxRedirects is how many redirects a call follows before the last
// redirect is taken as the reply (a 3xx: a bad gateway).
const maxRedirects = 5

// defaultHTTP follows a microservice's redirects, as the Ocean backend's
// HTTP client does (a microservice moved to https, or to a path with a
// trailing slash), up to maxRedirects.
var defaultHTTP = &http.Client{
	CheckRedirect: func(_ *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return http.ErrUseLastResponse
		}
		return nil
	},
}

// join resolves ref against base as Python's urljoin does: a base without
// a trailing slash loses its last path segment.
func join(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(r).String(), nil
}

// do sends one request and decodes a 2xx JSON reply into out (if not nil).
func (c *Client) do(ctx context.Context, method, target string, body []byte, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("storage backend request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http().Do(req)
	if err != nil {
		return unreachable(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxReply))
	if err != nil {
		return unreachable(err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return remoteError(res.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	// Replies are relayed as they are (quotes, links, history pages):
	// invalid UTF-8 would make the node's own reply invalid JSON.
	if !utf8.Valid(raw) {
		return &RemoteError{Status: res.StatusCode, Message: "the storage backend sent an invalid reply"}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &RemoteError{Status: res.StatusCode, Message: "the storage backend sent an invalid reply", Body: raw}
	}
	return nil
}

func remoteError(status int, raw []byte) *RemoteError {
	e := &RemoteError{Status: status, Message: http.StatusText(status)}
	if utf8.Valid(raw) && json.Valid(raw) {
		e.Body = raw
	}
	var m struct {
		Message string          `json:"message"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &m) == nil {
		var s string
		var nested struct{ Message string }
		switch {
		case m.Message != "":
			e.Message = m.Message
		case json.Unmarshal(m.Error, &s) == nil && s != "":
			e.Message = s
		case json.Unmarshal(m.Error, &nested) == nil && nested.Message != "":
			e.Message = nested.Message
		}
	}
	return e
}

// GetQuote forwards a quote request body as is.
func (c *Client) GetQuote(ctx context.Context, s Storage, body []byte) (json.RawMessage, error) {
	target, err := join(s.URL, "getQuote")
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	return out, c.do(ctx, http.MethodPost, target, body, &out)
}

// Upload hands the files to the microservice. The URL is built by
// concatenation, as the Ocean backend does; a missing trailing slash is
// added.
func (c *Client) Upload(ctx context.Context, s Storage, quoteID, nonce, signature string, files []FileRef) error {
	base := s.URL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	q := url.Values{"quoteId": {quoteID}, "nonce": {nonce}, "signature": {signature}}
	body, _ := json.Marshal(map[string]any{"quoteId": quoteID, "nonce": nonce, "signature": signature, "files": files})
	return c.do(ctx, http.MethodPost, base+"upload/?"+q.Encode(), body, nil)
}

// GetStatus reads the quote's status on the microservice.
//
// A 2xx reply must carry an integer status. A 4xx reply that carries one
// is a status report too (the Filecoin service answers its internal error
// as HTTP 400 {"error": ..., "status": 401}, and the Ocean backend records
// that status); any other error reply is returned as a RemoteError.
func (c *Client) GetStatus(ctx context.Context, s Storage, quoteID string) (int, error) {
	target, err := join(s.URL, "getStatus?"+url.Values{"quoteId": {quoteID}}.Encode())
	if err != nil {
		return 0, err
	}
	var out struct {
		Status *int `json:"status"`
	}
	err = c.do(ctx, http.MethodGet, target, nil, &out)
	if re, ok := IsRemote(err); ok && re.Err == nil && re.Status >= 400 && re.Status < 500 {
		if json.Unmarshal(re.Body, &out) == nil && out.Status != nil {
			return *out.Status, nil
		}
	}
	if err != nil {
		return 0, err
	}
	if out.Status == nil {
		return 0, &RemoteError{Status: http.StatusOK, Message: "The storage backend's status reply has no status."}
	}
	return *out.Status, nil
}

// GetLink asks for the stored files' links.
func (c *Client) GetLink(ctx context.Context, s Storage, quoteID, nonce, signature string) (json.RawMessage, error) {
	target, err := join(s.URL, "getLink?"+url.Values{"quoteId": {quoteID}, "nonce": {nonce}, "signature": {signature}}.Encode())
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, target, nil, &out)
}

// GetHistory forwards a history query.
func (c *Client) GetHistory(ctx context.Context, s Storage, q url.Values) (json.RawMessage, error) {
	target, err := join(s.URL, "getHistory?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, target, nil, &out)
}

// IsRemote reports whether err is a microservice's own error reply.
func IsRemote(err error) (*RemoteError, bool) {
	var r *RemoteError
	ok := errors.As(err, &r)
	return r, ok
}
