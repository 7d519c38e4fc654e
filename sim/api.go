package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/sluicehq/sluice/farmer"
)

// api makes the calls farmer.Client does not cover: the uploader API, the
// status API and readiness. Failures are *farmer.APIError values, so that
// errors are classified the same way on every route.
type api struct {
	r    *run
	base string // no trailing slash
}

// Limits on what is read back.
const (
	maxJSONBody  = 4 << 20
	maxErrorBody = 64 << 10
)

// do sends one request and decodes a 2xx JSON answer into out (when not
// nil); it records the call under route.
func (a *api) do(ctx context.Context, route, method, u string, body io.Reader, contentType string, out any) error {
	start := time.Now()
	err := a.send(ctx, method, u, body, contentType, func(r io.Reader) error {
		if out == nil {
			return nil
		}
		if err := json.NewDecoder(io.LimitReader(r, maxJSONBody)).Decode(out); err != nil {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		return nil
	})
	a.r.m.observe(route, time.Since(start), err)
	return err
}

// send makes the request within the scenario's timeout and hands a 2xx
// body to read.
func (a *api) send(ctx context.Context, method, u string, body io.Reader, contentType string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, a.r.sc.RequestTimeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := a.r.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
		res.Body.Close()
	}()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return apiError(res)
	}
	return read(res.Body)
}

// apiError reads a refusal in either API's envelope: {"message"} (farmer
// API) or {"error"} (uploader API).
func apiError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	var env struct{ Message, Error string }
	msg := http.StatusText(res.StatusCode)
	if json.Unmarshal(b, &env) == nil {
		if env.Message != "" {
			msg = env.Message
		} else if env.Error != "" {
			msg = env.Error
		}
	}
	return &farmer.APIError{Status: res.StatusCode, Message: msg,
		RetryAfter: farmer.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())}
}

// storageType is one entry of GET /.
type storageType struct {
	Type    string `json:"type"`
	Payment []struct {
		ChainID        json.RawMessage `json:"chainId"`
		AcceptedTokens []struct {
			Title string `json:"title"`
			Value string `json:"value"`
		} `json:"acceptedTokens"`
	} `json:"payment"`
}

// waitStorage reads the storage types (GET /, which is also the farmers'
// connectivity check), retrying for up to wait.
func (a *api) waitStorage(ctx context.Context, wait time.Duration) ([]storageType, error) {
	deadline := time.Now().Add(wait)
	for attempt := 0; ; attempt++ {
		var out []storageType
		err := a.do(ctx, routeStorage, http.MethodGet, a.base+"/", nil, "", &out)
		if err == nil || !farmer.Retryable(err) || time.Now().After(deadline) {
			return out, err
		}
		if !sleepUntil(ctx, nil, time.Now().Add(farmer.Backoff(attempt, 0.5))) {
			return nil, ctx.Err()
		}
	}
}

// waitReady polls GET /readyz until 200, for up to wait.
func (a *api) waitReady(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := a.do(ctx, routeReady, http.MethodGet, a.base+"/readyz", nil, "", nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", wait, err)
		}
		if !sleepUntil(ctx, nil, time.Now().Add(50*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// farmerStatus is the part of /status/show the ledger reads.
type farmerStatus struct {
	ID         string `json:"id"`
	Heartbeats int64  `json:"heartbeats"`
	Contracts  int    `json:"contracts"`
}

func (a *api) status(ctx context.Context, id string) (farmerStatus, error) {
	var out farmerStatus
	u := a.base + farmer.APIPrefix + "/status/show/" + url.PathEscape(id)
	return out, a.do(ctx, routeStatus, http.MethodGet, u, nil, "", &out)
}

// quoteRequest is a getQuote body.
type quoteRequest struct {
	Type        string       `json:"type"`
	Files       []quoteFile  `json:"files"`
	Duration    int64        `json:"duration"`
	Payment     quotePayment `json:"payment"`
	UserAddress string       `json:"userAddress"`
}

type quoteFile struct {
	Length int64 `json:"length"`
}

type quotePayment struct {
	ChainID      string `json:"chainId"`
	TokenAddress string `json:"tokenAddress"`
}

// quote is a getQuote answer.
type quote struct {
	QuoteID        string          `json:"quoteId"`
	TokenAmount    string          `json:"tokenAmount"`
	ApproveAddress string          `json:"approveAddress"`
	ChainID        json.RawMessage `json:"chainId"`
	TokenAddress   string          `json:"tokenAddress"`
}

func (a *api) getQuote(ctx context.Context, q quoteRequest) (quote, error) {
	b, _ := json.Marshal(q)
	var out quote
	err := a.do(ctx, routeQuote, http.MethodPost, a.base+"/getQuote", bytes.NewReader(b), "application/json", &out)
	if err == nil && out.QuoteID == "" {
		err = fmt.Errorf("%w: no quoteId", errMalformed)
	}
	return out, err
}

// upload posts one file as multipart field file1.
func (a *api) upload(ctx context.Context, quoteID, nonce, sig string, data []byte) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file1", "sim.bin")
	_, _ = fw.Write(data)
	_ = mw.Close()
	u := a.base + "/upload?" + url.Values{"quoteId": {quoteID}, "nonce": {nonce}, "signature": {sig}}.Encode()
	return a.do(ctx, routeUpload, http.MethodPost, u, &body, mw.FormDataContentType(), nil)
}

func (a *api) getStatus(ctx context.Context, quoteID string) (int, error) {
	var out struct {
		Status int `json:"status"`
	}
	err := a.do(ctx, routeGetStatus, http.MethodGet, a.base+"/getStatus?"+url.Values{"quoteId": {quoteID}}.Encode(), nil, "", &out)
	return out.Status, err
}

// link is one getLink entry.
type link struct {
	Type string `json:"type"`
	CID  string `json:"cid"`
}

func (a *api) getLink(ctx context.Context, quoteID, nonce, sig string) ([]link, error) {
	var out []link
	u := a.base + "/getLink?" + url.Values{"quoteId": {quoteID}, "nonce": {nonce}, "signature": {sig}}.Encode()
	return out, a.do(ctx, routeGetLink, http.MethodGet, u, nil, "", &out)
}

// fetch reads a stored file back (at most limit bytes).
func (a *api) fetch(ctx context.Context, cid string, limit int64) ([]byte, error) {
	var out []byte
	start := time.Now()
	err := a.send(ctx, http.MethodGet, a.base+"/ipfs/"+url.PathEscape(cid), nil, "", func(r io.Reader) (err error) {
		out, err = io.ReadAll(io.LimitReader(r, limit))
		return err
	})
	a.r.m.observe(routeIPFS, time.Since(start), err)
	return out, err
}
