package farmer

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	prevHigh := time.Duration(0)
	for attempt := 0; attempt < 20; attempt++ {
		lo, hi := Backoff(attempt, 0), Backoff(attempt, 1)
		mid := Backoff(attempt, 0.5)
		if lo < BackoffStart/2 || hi > BackoffCap {
			t.Fatalf("attempt %d: got [%v, %v], want within [%v, %v]", attempt, lo, hi, BackoffStart/2, BackoffCap)
		}
		if lo*2 != hi || mid <= lo || mid >= hi {
			t.Fatalf("attempt %d: got lo %v mid %v hi %v, want hi = 2·lo and lo < mid < hi", attempt, lo, mid, hi)
		}
		if hi < prevHigh {
			t.Fatalf("attempt %d: got %v, want at least the previous %v", attempt, hi, prevHigh)
		}
		prevHigh = hi
	}
	if got := Backoff(0, 1); got != BackoffStart {
		t.Fatalf("first retry: got %v, want %v", got, BackoffStart)
	}
	if got := Backoff(1, 1); got != 2*BackoffStart {
		t.Fatalf("second retry: got %v, want %v", got, 2*BackoffStart)
	}
	if got := Backoff(100, 1); got != BackoffCap {
		t.Fatalf("late retry: got %v, want the cap %v", got, BackoffCap)
	}
	if got := Backoff(3, -5); got != Backoff(3, 0) {
		t.Fatalf("jitter below 0: got %v, want %v", got, Backoff(3, 0))
	}
	if got := Backoff(3, 7); got != Backoff(3, 1) {
		t.Fatalf("jitter above 1: got %v, want %v", got, Backoff(3, 1))
	}
}

func TestRetryDelay(t *testing.T) {
	busy := &APIError{Status: http.StatusServiceUnavailable, Message: "busy", RetryAfter: 7 * time.Second}
	if got := RetryDelay(busy, 0, 1); got != 7*time.Second {
		t.Fatalf("Retry-After 7s: got %v, want 7s", got)
	}
	if got := RetryDelay(busy, 10, 1); got != BackoffCap {
		t.Fatalf("backoff above Retry-After: got %v, want %v", got, BackoffCap)
	}
	long := &APIError{Status: http.StatusTooManyRequests, RetryAfter: time.Hour}
	if got := RetryDelay(long, 0, 0); got != maxRetryAfter {
		t.Fatalf("long Retry-After: got %v, want %v", got, maxRetryAfter)
	}
	if got := RetryDelay(errors.New("network"), 2, 1); got != Backoff(2, 1) {
		t.Fatalf("plain error: got %v, want %v", got, Backoff(2, 1))
	}
}

func TestLatestSend(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		ready    time.Duration // after t0
		deadline time.Duration // after t0
		window   time.Duration
		want     time.Duration // after t0
	}{
		{"window fits", 0, 300 * time.Second, time.Second, time.Second},
		{"halfway is earlier than the window", 0, time.Second, 5 * time.Second, 500 * time.Millisecond},
		{"ready late", 10 * time.Second, 12 * time.Second, 5 * time.Second, 11 * time.Second},
		{"deadline passed", 10 * time.Second, 5 * time.Second, time.Second, 10 * time.Second},
		{"no window", 3 * time.Second, 300 * time.Second, 0, 3 * time.Second},
	}
	for _, tt := range tests {
		got := LatestSend(t0.Add(tt.ready), t0.Add(tt.deadline), tt.window)
		if want := t0.Add(tt.want); !got.Equal(want) {
			t.Errorf("%s: got %v, want %v", tt.name, got.Sub(t0), tt.want)
		}
	}
}

func TestSendTime(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	if _, ok := SendTime(nil, time.Second); ok {
		t.Fatal("empty batch: got ok, want none")
	}
	items := []Pending{
		{Ready: at(0), Deadline: at(300)},   // 1 s window: t0+1
		{Ready: at(0.5), Deadline: at(301)}, // t0+1.5
	}
	got, ok := SendTime(items, time.Second)
	if !ok || !got.Equal(at(1)) {
		t.Fatalf("got %v, want t0+1s", got.Sub(t0))
	}
	// A late arrival with a close deadline pulls the batch forward.
	items = append(items, Pending{Ready: at(0.6), Deadline: at(1)})
	got, _ = SendTime(items, time.Second)
	if !got.Equal(at(0.8)) {
		t.Fatalf("got %v, want t0+0.8s", got.Sub(t0))
	}
	// Sending is due once now reaches the send time, not before.
	if now := at(0.79); !now.Before(got) {
		t.Fatalf("at %v: got due, want not yet", now.Sub(t0))
	}
	if now := at(0.8); now.Before(got) {
		t.Fatalf("at %v: got not due, want due", now.Sub(t0))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"0", 0},
		{"-4", 0},
		{"soon", 0},
		{"100000", maxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		in   float64
		want time.Duration
	}{
		{299.5, 299500 * time.Millisecond},
		{0, 0},
		{-3, 0},
		{1e30, 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := Seconds(tt.in); got != tt.want {
			t.Errorf("Seconds(%v): got %v, want %v", tt.in, got, tt.want)
		}
	}
}
