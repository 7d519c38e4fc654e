package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/sim"
)

// TestQuoteLimitIsWaitedOutAndReported: against a node whose getQuote
// limit the uploaders (one address) exceed, every upload still completes,
// as its uploader waits out each 429, and the report counts the 429s and
// says which flag the node needs.
func TestQuoteLimitIsWaitedOutAndReported(t *testing.T) {
	if testing.Short() {
		t.Skip("a 6s simulation")
	}
	t.Parallel()
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{
		Engine: actors.Config{Terms: sluice.Terms{Interval: 500 * time.Millisecond, Challenges: 256},
			Uploads: actors.UploadConfig{Redundancy: 1, ChunkSize: 64 << 10}},
		HTTP: sluicehttp.Config{RequestTimeout: 5 * time.Second, QuoteRate: 2, QuoteBurst: 1},
	})
	sc := sim.Scenario{
		Name:            "quote-limit",
		Duration:        sim.Duration(6 * time.Second),
		IntervalHint:    sim.Duration(500 * time.Millisecond),
		RequestTimeout:  sim.Duration(5 * time.Second),
		UploadChunkSize: 64 << 10,
		Farmers:         []sim.FarmerGroup{{Kind: sim.Honest, Count: 2, Size: 128 << 10}},
		Uploaders:       []sim.UploaderGroup{{Count: 3, Uploads: 1, Sizes: []sim.Size{10 << 10}}},
	}
	rep, err := sim.Run(context.Background(), sc, sim.Options{Node: n.URL})
	if err != nil {
		t.Fatal(err)
	}
	if u := rep.Uploads; u.Done != 3 {
		for _, r := range rep.UploadList {
			t.Logf("upload %s: %s at status %d %s", r.QuoteID, r.Outcome, r.Status, r.Error)
		}
		t.Fatalf("uploads %+v, want 3 done", u)
	}
	if rep.QuotesLimited == 0 {
		t.Fatal("three uploaders starting together against a burst of 1: no 429 counted")
	}
	found := false
	for _, note := range rep.Notes {
		found = found || strings.Contains(note, "--quote-rate 0")
	}
	if !found {
		t.Errorf("notes %q: want one naming --quote-rate 0", rep.Notes)
	}
}
