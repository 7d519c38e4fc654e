package sluice

import (
	"errors"
	"math"
	"time"
)

// Location is where a farmer's IP address is, as far as the GeoIP database
// knows; a field it lacks is nil (JSON null).
type Location struct {
	City    *string  `json:"city"`
	Country *string  `json:"country"`
	Lat     *float64 `json:"lat"`
	Lon     *float64 `json:"lon"`
	State   *string  `json:"state"`
	Zip     *string  `json:"zip"`
}

// Uptime accumulates the time a farmer had at least one live contract.
// Overlapping contracts count once; gaps with no live contract are
// downtime; time before the first contract does not count.
type Uptime struct {
	First time.Time     `json:"first,omitzero"` // start of the first contract
	Up    time.Duration `json:"up"`             // up-time of closed periods
	Since time.Time     `json:"since,omitzero"` // start of the current up period; zero while down
}

// Rise records that the farmer went from no live contract to one at t.
func (u *Uptime) Rise(t time.Time) {
	if u.First.IsZero() {
		u.First = t
	}
	if u.Since.IsZero() {
		u.Since = t
	}
}

// Fall records that the farmer's last live contract closed at t.
func (u *Uptime) Fall(t time.Time) {
	if u.Since.IsZero() {
		return
	}
	if t.After(u.Since) {
		u.Up += t.Sub(u.Since)
	}
	u.Since = time.Time{}
}

// Percent is the up-time as a percentage of the time since the first
// contract, rounded to two decimals; 0 for a farmer that never had one.
func (u Uptime) Percent(now time.Time) float64 {
	if u.First.IsZero() || !now.After(u.First) {
		return 0
	}
	up := u.Up
	if !u.Since.IsZero() && now.After(u.Since) {
		up += now.Sub(u.Since)
	}
	p := 100 * float64(up) / float64(now.Sub(u.First))
	return math.Round(min(p, 100)*100) / 100
}

// Bucket is a token-bucket rate limiter: Rate requests a second on
// average, bursts of up to Burst.
type Bucket struct {
	Tokens float64
	Last   time.Time
}

// Allow takes one request at now. When the bucket is empty it reports how
// long until the next request would be allowed.
func (b *Bucket) Allow(now time.Time, rate float64, burst int) (bool, time.Duration) {
	if rate <= 0 {
		return true, 0
	}
	if b.Last.IsZero() {
		b.Tokens = float64(burst)
	} else if now.After(b.Last) {
		b.Tokens = min(float64(burst), b.Tokens+now.Sub(b.Last).Seconds()*rate)
	}
	b.Last = now
	if b.Tokens >= 1 {
		b.Tokens--
		return true, 0
	}
	// Capped at a day, so that a tiny rate cannot overflow the duration.
	wait := min((1-b.Tokens)/rate, 86400)
	return false, time.Duration(wait * float64(time.Second))
}

// LimitedError is the answer to a client over its rate limit.
type LimitedError struct {
	RetryAfter time.Duration
}

// ErrLimited is the kind of LimitedError.
var ErrLimited = errors.New("too many requests")

func (e *LimitedError) Error() string { return "Too many requests; slow down." }

// Unwrap gives the kind.
func (e *LimitedError) Unwrap() error { return ErrLimited }
