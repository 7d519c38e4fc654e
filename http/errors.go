package http

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// errorBody is the farmer API's error format.
type errorBody struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// uploaderErrorBody is the uploader API's error format (and the private
// listener's).
type uploaderErrorBody struct {
	Error string `json:"error"`
}

// Request-level errors of the HTTP layer itself.
var (
	errBodyTooLarge = &sluice.Error{Kind: errTooLarge, Message: "Request body too large."}
	errTooLarge     = errors.New("too large")
	errStarting     = &sluice.Error{Kind: sluice.ErrUnavailable, Message: "The node is starting; try again shortly."}
)

// farmerStatus is the one table from error kinds to status codes for the
// farmer API. The original node answered every request error with 400, and
// farmers match on messages, so only a missing resource (404), an oversized
// body (413) and an unavailable node (503) differ.
func farmerStatus(err error) int {
	switch {
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, sluice.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, sluice.ErrInvalid), errors.Is(err, sluice.ErrConflict), errors.Is(err, sluice.ErrExpired):
		return http.StatusBadRequest
	case errors.Is(err, sluice.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, sluice.ErrLimited):
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// okBody is what writeJSON writes for {"status": "ok"}, the reply to
// every accepted answer: written as is, without encoding a map each time.
var okBody = []byte(`{"status":"ok"}` + "\n")

// writeOK answers 200 with okBody.
func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

// writeError answers with the API's error format. Internal errors are
// logged here, where they are handled, and their text is not sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := farmerStatus(err)
	if code >= 500 && code != http.StatusServiceUnavailable {
		s.log.Error(eventInternalError, zap.String("route", routeOf(r)), zap.Error(err))
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	setRetryAfter(w, err)
	writeJSON(w, code, errorBody{Status: "error", Message: sluice.Message(err)})
}

// setRetryAfter tells a client over its rate limit when to come back.
func setRetryAfter(w http.ResponseWriter, err error) {
	var lim *sluice.LimitedError
	if errors.As(err, &lim) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(lim.RetryAfter.Seconds()))))
	}
}
