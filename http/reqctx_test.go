package http

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type ctxKey struct{}

// A request context that nobody waits on reports its deadline through Err
// alone; once something waits on Done it ends at the deadline like
// context.WithDeadline's.
func TestRequestCtxDeadline(t *testing.T) {
	for _, arm := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			parent := context.WithValue(context.Background(), ctxKey{}, "v")
			dl := time.Now().Add(time.Second)
			ctx := newRequestCtx(parent, dl)
			defer ctx.release()
			if got, ok := ctx.Deadline(); !ok || !got.Equal(dl) {
				t.Fatalf("Deadline: got %v %v, want %v true", got, ok, dl)
			}
			if got := ctx.Value(ctxKey{}); got != "v" {
				t.Fatalf("Value: got %v, want the parent's %q", got, "v")
			}
			var done <-chan struct{}
			if arm {
				done = ctx.Done()
			}
			time.Sleep(time.Second - time.Nanosecond)
			if err := ctx.Err(); err != nil {
				t.Fatalf("armed %v, before the deadline: Err %v, want nil", arm, err)
			}
			time.Sleep(time.Nanosecond)
			synctest.Wait() // an armed deadline's timer has run
			if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("armed %v, at the deadline: Err %v, want context.DeadlineExceeded", arm, err)
			}
			if !arm {
				done = ctx.Done() // armed late: already ended
			}
			select {
			case <-done:
			default:
				t.Fatalf("armed %v: Done not closed at the deadline", arm)
			}
			if got := ctx.Value(ctxKey{}); got != "v" {
				t.Fatalf("Value once armed: got %v, want the parent's %q", got, "v")
			}
		})
	}
}

// The parent's end (the client left) is the request context's end, armed
// or not, and contexts derived from it end with it.
func TestRequestCtxFollowsItsParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		ctx := newRequestCtx(parent, time.Now().Add(time.Minute))
		defer ctx.release()
		unarmed := newRequestCtx(parent, time.Now().Add(time.Minute))
		child, cancelChild := context.WithCancel(ctx) // arms ctx
		defer cancelChild()
		cancel()
		synctest.Wait()
		for name, c := range map[string]context.Context{"armed": ctx, "unarmed": unarmed, "derived": child} {
			if err := c.Err(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s, parent cancelled: Err %v, want context.Canceled", name, err)
			}
			select {
			case <-c.Done():
			default:
				t.Errorf("%s, parent cancelled: Done not closed", name)
			}
		}
	})
}

// A context derived before the deadline ends at it; release ends an armed
// context at once.
func TestRequestCtxDerivedAndReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := newRequestCtx(context.Background(), time.Now().Add(time.Second))
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		start := time.Now()
		<-child.Done()
		if took := time.Since(start); took != time.Second || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("derived context ended after %s with %v, want 1s and context.DeadlineExceeded", took, child.Err())
		}
		ctx.release()

		ctx = newRequestCtx(context.Background(), time.Now().Add(time.Minute))
		done := ctx.Done()
		ctx.release()
		select {
		case <-done:
		default:
			t.Fatal("released: Done not closed")
		}
	})
}
