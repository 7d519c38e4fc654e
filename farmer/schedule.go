package farmer

import (
	"errors"
	"time"
)

// Retry timing: exponential backoff from BackoffStart, doubling up to
// BackoffCap, with jitter.
const (
	BackoffStart = 250 * time.Millisecond
	BackoffCap   = 10 * time.Second
	// maxRetryAfter caps how long a Retry-After header can hold a farmer
	// back.
	maxRetryAfter = 5 * time.Minute
)

// Backoff returns the wait before retry number attempt (0 for the first
// retry): d = BackoffStart·2^attempt capped at BackoffCap, jittered into
// [d/2, d] by jitter in [0, 1] (values outside are clamped), so that
// farmers that failed together do not retry together.
func Backoff(attempt int, jitter float64) time.Duration {
	d := BackoffStart
	for i := 0; i < attempt && d < BackoffCap; i++ {
		d *= 2
	}
	d = min(d, BackoffCap)
	jitter = min(max(jitter, 0), 1)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// RetryDelay returns the wait before retrying after err: Backoff, or the
// node's Retry-After if that is longer.
func RetryDelay(err error, attempt int, jitter float64) time.Duration {
	d := Backoff(attempt, jitter)
	var e *APIError
	if errors.As(err, &e) && e.RetryAfter > d {
		d = min(e.RetryAfter, maxRetryAfter)
	}
	return d
}

// LatestSend returns the latest time at which an item that became ready
// at ready, and must reach the node strictly before deadline, may still wait
// in a batch: ready + window, but no later than halfway from ready to the
// deadline, so that half of the time left stays for the call and its
// retries. An item whose deadline already passed is sent at once.
func LatestSend(ready, deadline time.Time, window time.Duration) time.Time {
	wait := min(window, deadline.Sub(ready)/2)
	return ready.Add(max(wait, 0))
}

// Pending is an item waiting in a batch: when it became ready, and the
// deadline it must beat.
type Pending struct {
	Ready, Deadline time.Time
}

// SendTime returns when a batch of items should be sent: the earliest
// LatestSend over its items. ok is false for an empty batch. A batch is due
// at now when !now.Before(t).
func SendTime(items []Pending, window time.Duration) (t time.Time, ok bool) {
	for i, p := range items {
		if s := LatestSend(p.Ready, p.Deadline, window); i == 0 || s.Before(t) {
			t = s
		}
	}
	return t, len(items) > 0
}
