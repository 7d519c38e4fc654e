package farmer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
)

// APIPrefix is where a node serves the farmer API, below its base URL.
const APIPrefix = "/api/downstream/v1"

// DefaultTimeout bounds one API call whose context has no earlier deadline.
const DefaultTimeout = 30 * time.Second

// Limits on what the client reads from a response.
const (
	maxResponseBody = 64 << 20 // a /challenge answer for many thousands of contracts
	maxErrorBody    = 64 << 10
	drainBody       = 4 << 10 // read before closing, so the connection is reused
)

// APIError is a request the node refused as a whole: a non-2xx status with
// the message of its {"status":"error","message":...} envelope (or the
// status text if the body was not one). Per-item problems of batch calls are
// never APIErrors; they come back as items.
type APIError struct {
	Status  int
	Message string
	// RetryAfter is the node's Retry-After header (0 when absent).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("node answered %d: %s", e.Status, e.Message)
}

// IsNonexistentToken reports whether err is the node saying that it does
// not know the token (sluice.MsgNonexistentToken).
func IsNonexistentToken(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Message == sluice.MsgNonexistentToken
}

// Retryable reports whether a failed request may succeed if sent again:
// network errors, timeouts, malformed responses, 429 and 5xx. Other 4xx
// answers and a cancelled context are final.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *APIError
	if errors.As(err, &e) {
		return e.Status == http.StatusTooManyRequests || e.Status >= 500
	}
	return true
}

// Client calls one node's farmer API. It holds no state besides the node's
// URL and the shared *http.Client, so it is cheap to create and safe for
// concurrent use. It does not retry: callers decide.
type Client struct {
	base *url.URL // the node's base URL; its path ends in "/"
	api  string   // base + APIPrefix, without a trailing slash
	hc   *http.Client
	// Timeout bounds each API call (not Download) when the context has no
	// earlier deadline; 0 means DefaultTimeout. Set it before first use.
	Timeout time.Duration
}

// NewClient returns a client for the node at base URL node (such as
// "https://node.example:8443"; a trailing APIPrefix is accepted and
// ignored). hc is shared by every call; nil means DefaultHTTPClient().
func NewClient(node string, hc *http.Client) (*Client, error) {
	u, err := parseNode(node)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = DefaultHTTPClient()
	}
	return &Client{base: u, api: strings.TrimSuffix(u.String(), "/") + APIPrefix, hc: hc}, nil
}

// parseNode checks a node URL and returns it with the path trimmed of
// APIPrefix and ending in "/".
func parseNode(node string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(node))
	if err != nil {
		return nil, fmt.Errorf("farmer: node URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("farmer: node URL %q: want http(s)://host[:port]", node)
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), APIPrefix)
	u.Path = strings.TrimRight(u.Path, "/") + "/"
	u.RawPath, u.RawQuery, u.Fragment, u.User = "", "", "", nil
	return u, nil
}

// NormalizeNode returns the canonical form of a node URL: the base URL
// without APIPrefix and without a trailing slash. Token files store it.
func NormalizeNode(node string) string {
	u, err := parseNode(node)
	if err != nil {
		return strings.TrimRight(strings.TrimSpace(node), "/")
	}
	return strings.TrimSuffix(u.String(), "/")
}

// DefaultHTTPClient returns an *http.Client with timeouts on every phase:
// 10 s to connect and for the TLS handshake, 30 s for response headers, and
// 10 minutes overall (long enough to download a large chunk; API calls are
// bounded tighter by Client.Timeout). Build one and share it.
func DefaultHTTPClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t, Timeout: 10 * time.Minute}
}

// Ping checks that the node answers GET on its base URL with a 2xx.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, c.base.String(), "GET /", nil, nil)
}

// New asks for a token for address. With an empty signature it sends
// GET /new/{address} (nodes that require signatures refuse it); otherwise
// POST /new/{address} with the message and signature.
func (c *Client) New(ctx context.Context, address, message, signature string) (NewTokenResponse, error) {
	var out NewTokenResponse
	u := c.api + "/new/" + url.PathEscape(address)
	if signature == "" {
		return out, c.do(ctx, http.MethodGet, u, "GET /new", nil, &out)
	}
	return out, c.do(ctx, http.MethodPost, u, "POST /new", newRequest{Message: message, Signature: signature}, &out)
}

// Heartbeat reconnects with a saved token. A token the node does not know
// gives an error for which IsNonexistentToken is true.
func (c *Client) Heartbeat(ctx context.Context, token string) (NewTokenResponse, error) {
	var out NewTokenResponse
	return out, c.do(ctx, http.MethodGet, c.api+"/heartbeat/"+url.PathEscape(token), "GET /heartbeat", nil, &out)
}

// Chunks asks for new contracts of at most size bytes in total; size ≤ 0
// lets the node choose. The list may be empty.
func (c *Client) Chunks(ctx context.Context, token string, size int64) ([]ChunkItem, error) {
	u := c.api + "/chunk/" + url.PathEscape(token)
	if size > 0 {
		u += "/" + strconv.FormatInt(size, 10)
	}
	var out chunksResponse
	return out.Chunks, c.do(ctx, http.MethodGet, u, "GET /chunk", nil, &out)
}

// Challenges asks for the current challenge of each contract named.
func (c *Client) Challenges(ctx context.Context, token string, hashes []sluice.FileHash) ([]ChallengeItem, error) {
	if hashes == nil {
		hashes = []sluice.FileHash{}
	}
	var out challengesResponse
	u := c.api + "/challenge/" + url.PathEscape(token)
	return out.Challenges, c.do(ctx, http.MethodPost, u, "POST /challenge", challengesRequest{Hashes: hashes}, &out)
}

// Answers sends proofs and returns the node's report, one item per proof.
func (c *Client) Answers(ctx context.Context, token string, proofs []ProofItem) ([]ReportItem, error) {
	if proofs == nil {
		proofs = []ProofItem{}
	}
	var out answersResponse
	u := c.api + "/answer/" + url.PathEscape(token)
	return out.Report, c.do(ctx, http.MethodPost, u, "POST /answer", answersRequest{Proofs: proofs}, &out)
}

// DeleteToken gives the token up; the node ends its contracts.
func (c *Client) DeleteToken(ctx context.Context, token string) error {
	return c.do(ctx, http.MethodDelete, c.api+"/token/"+url.PathEscape(token), "DELETE /token", nil, nil)
}

// Download opens the bytes of an uploaded chunk. ref is a ChunkItem.URL:
// absolute, or a reference resolved against the node's base URL (an
// absolute path keeps only the scheme and host). The caller closes the
// body; the call is bounded by ctx and the http.Client's Timeout only, since
// a large chunk can take longer than an API call.
func (c *Client) Download(ctx context.Context, ref string) (io.ReadCloser, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("farmer: chunk URL: %w", err)
	}
	u := c.base.ResolveReference(r)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("farmer: chunk URL: scheme %q", u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("farmer: download: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("farmer: download: %w", unwrapURLError(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer closeBody(resp.Body)
		return nil, readAPIError(resp, time.Now())
	}
	return resp.Body, nil
}

// do sends one API request and decodes a 2xx answer into out (when not
// nil). route names the call in errors: URLs carry the token, which must
// not reach logs.
func (c *Client) do(ctx context.Context, method, u, route string, in, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("farmer: %s: encoding request: %w", route, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("farmer: %s: %w", route, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("farmer: %s: %w", route, unwrapURLError(err))
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("farmer: %s: %w", route, readAPIError(resp, time.Now()))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("farmer: %s: decoding response: %w", route, err)
	}
	return nil
}

// unwrapURLError drops the *url.Error wrapper, whose text holds the URL
// and so the token.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func closeBody(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, drainBody))
	_ = b.Close()
}

// readAPIError builds the APIError of a non-2xx response received at now.
func readAPIError(resp *http.Response, now time.Time) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), now)}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env errorResponse
	if json.Unmarshal(b, &env) == nil && env.Message != "" {
		e.Message = env.Message
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// ParseRetryAfter reads a Retry-After header at now: delay-seconds or an
// HTTP date. Absent, malformed and past values give 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}
