package farmer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/metrics"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/farmer"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// TestFarmerAgainstNode runs the real farmer loop against a real node
// (real store, actors, HTTP listener) with a two-second challenge interval:
// it must fill its contracts, answer every challenge in time for several
// intervals, and stop cleanly. (With one second, a CI machine loaded with
// the race detector and other packages' tests once let a round of answers
// arrive late: real deadlines need a margin for the machine's worst
// moment, and two seconds still fits three intervals in a few seconds.)
func TestFarmerAgainstNode(t *testing.T) {
	for _, s := range nodetest.Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			n := nodetest.Start(t, s.Open(t), nodetest.Options{Engine: actors.Config{
				Terms:      sluice.Terms{Interval: 2 * time.Second, Challenges: 256},
				ChunkSizes: []int64{32 << 10, 256 << 10},
			}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			dir := t.TempDir()
			go func() {
				done <- farmer.Run(ctx, farmer.Config{
					Node: n.URL, Address: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
					Size: 1 << 20, Dir: dir, BatchWindow: 50 * time.Millisecond,
				})
			}()
			// Wait (bounded) until the farmer holds its size and every
			// contract has answered at least three challenges.
			deadline := time.After(30 * time.Second)
			for {
				accepted := metrics.Value(n.Metrics.Proofs.WithLabelValues("accepted"))
				live := metrics.Value(n.Metrics.LiveContracts)
				if live > 0 && accepted >= 3*live {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("farmer stopped: %v", err)
				case <-deadline:
					t.Fatalf("after 30s: %v live contracts, %v proofs accepted", live, accepted)
				case <-time.After(100 * time.Millisecond):
				}
			}
			if got := metrics.Value(n.Metrics.ContractsClosed.WithLabelValues("expired")); got != 0 {
				t.Fatalf("%v contracts expired under an honest farmer, want 0", got)
			}
			if got := metrics.Value(n.Metrics.LiveContracts); got != 4 {
				t.Fatalf("live contracts %v, want 4 (1 MiB in 256 KiB chunks)", got)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Fatalf("farmer stop: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("farmer did not stop within 10s of cancel")
			}
		})
	}
}

// TestFarmerLargerThanTheNodesRequestLimit: a node refuses a /chunk call
// for more than its limit with 400; a farmer whose size is over it asks
// for less instead of being refused for ever, and fills in several calls.
func TestFarmerLargerThanTheNodesRequestLimit(t *testing.T) {
	s := nodetest.Stores(t)[0]
	n := nodetest.Start(t, s.Open(t), nodetest.Options{
		Engine: actors.Config{
			Terms:      sluice.Terms{Interval: time.Minute, Challenges: 256},
			ChunkSizes: []int64{32 << 10, 256 << 10},
		},
		HTTP: sluicehttp.Config{MaxChunkRequest: 300 << 10},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- farmer.Run(ctx, farmer.Config{
			Node: n.URL, Address: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
			Size: 1 << 20, Dir: t.TempDir(), BatchWindow: 50 * time.Millisecond,
		})
	}()
	// 1 MiB is refused; calls for the 300 KiB the refusal states (one
	// 256 KiB chunk each) fill it in four.
	deadline := time.After(60 * time.Second)
	for metrics.Value(n.Metrics.LiveContracts) < 4 {
		select {
		case err := <-done:
			t.Fatalf("farmer stopped: %v", err)
		case <-deadline:
			t.Fatalf("after 60s: %v live contracts, want 4 (1 MiB in 256 KiB calls)", metrics.Value(n.Metrics.LiveContracts))
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("farmer stop: %v", err)
	}
}
