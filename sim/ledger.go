package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
)

// farmerLedger is the simulator's record of one farmer id: what the node
// acknowledged to it.
type farmerLedger struct {
	ID   string
	Kind Kind
	// Acked counts answers the node reported "ok".
	Acked int64
	// Inferred counts answers sent in calls that failed without a reply
	// (a timeout, a reset connection, the node killed mid-call) which the
	// node later showed it had applied: a retry got "challenge already
	// answered", or /challenge showed the challenge answered or replaced
	// by the next one (not across a restart, which may replace a challenge
	// the node had not stored).
	Inferred int64
	// Uncertain counts such answers never settled either way.
	Uncertain int64
	// TokenLost: the node answered "Nonexistent token." for this token.
	TokenLost bool
	// Expiries are the contracts that expired when the farmer did not
	// expect it: not after a late or rejected answer, not a cheater's, and
	// not due during a flaky farmer's outage (or within half an interval
	// of its end).
	Expiries []Expiry
}

// Expiry is a contract the node reported expired, with the window in
// which the due time that passed must lie as the farmer knew it.
type Expiry struct {
	Farmer   string    `json:"farmer"`
	Kind     Kind      `json:"kind"`
	FileHash string    `json:"file_hash"`
	DueFrom  time.Time `json:"due_from"`
	DueTo    time.Time `json:"due_to"`
	Seen     time.Time `json:"seen"`
	Via      string    `json:"via"` // how it was seen: "answer", "challenge", or "chunk" (handed out again)
}

// Ledger is the result of comparing the simulator's record with the
// node's. For every farmer id, with A answers acknowledged ("ok"), I
// inferred applied and U unsettled (see farmerLedger), the node's
// heartbeats H (GET /status/show/{id}, every valid proof ever accepted)
// must satisfy
//
//	A + I ≤ H ≤ A + I + U
//
// H < A + I means the node lost acknowledged answers (after a SIGKILL:
// it replied before committing); H > A + I + U means it counted answers
// nobody sent. Without failed calls U is 0 and H must equal A exactly.
// Every upload the simulator saw reach status 400 must still be 400. No
// contract may expire for a due time that fell while the node was down
// (between the restart hook's call and /readyz answering again): the node
// moves such due times at start-up. A token the node forgot is a
// difference too.
type Ledger struct {
	Farmers    int   `json:"farmers"`
	Acked      int64 `json:"acknowledged"`
	Inferred   int64 `json:"inferred"`
	Uncertain  int64 `json:"unsettled"`
	Heartbeats int64 `json:"heartbeats"`
	Uploads    int   `json:"uploads_checked"`
	// Expiries lists the unexpected expiries (any farmer), with the ones
	// in a restart window among the differences.
	Expiries    []Expiry `json:"unexpected_expiries,omitempty"`
	Differences []string `json:"differences"`
	Skipped     bool     `json:"skipped,omitempty"`
	// NodeGone says why the ledger was not checked when the node did not
	// answer at the end of the run (it died, or was stopped).
	NodeGone string `json:"node_gone,omitempty"`
}

// checkLedger compares the farmers' and uploaders' records with the node.
func (r *run) checkLedger(ctx context.Context, farmers []*vfarmer) Ledger {
	var l Ledger
	var books []*farmerLedger
	for _, f := range farmers {
		for _, b := range f.ledger {
			books = append(books, b)
		}
	}
	slices.SortFunc(books, func(a, b *farmerLedger) int { return strings.Compare(a.ID, b.ID) })
	diffs := make([][]string, len(books))
	hbs := make([]int64, len(books))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(16, max(1, r.sc.Pool/4)) {
		wg.Go(func() {
			for i := range work {
				hbs[i], diffs[i] = r.checkFarmer(ctx, books[i])
			}
		})
	}
	for i := range books {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, b := range books {
		l.Farmers++
		l.Acked += b.Acked
		l.Inferred += b.Inferred
		l.Uncertain += b.Uncertain
		l.Heartbeats += hbs[i]
		l.Differences = append(l.Differences, diffs[i]...)
		l.Expiries = append(l.Expiries, b.Expiries...)
	}

	// Uploads that reached 400 stay 400.
	r.uploadMu.Lock()
	uploads := slices.Clone(r.uploads)
	r.uploadMu.Unlock()
	for _, u := range uploads {
		if u.Status != sluice.StatusDone {
			continue
		}
		l.Uploads++
		st, err := r.api.getStatus(ctx, u.QuoteID)
		switch {
		case err != nil:
			l.Differences = append(l.Differences, fmt.Sprintf("upload %s: getStatus failed: %v", u.QuoteID, err))
		case st != sluice.StatusDone:
			l.Differences = append(l.Differences, fmt.Sprintf("upload %s: status %d, was 400 (done)", u.QuoteID, st))
		}
	}

	// No expiry for a due time in a restart window.
	r.restartMu.Lock()
	windows := slices.Clone(r.restarts)
	r.restartMu.Unlock()
	for _, e := range l.Expiries {
		for _, w := range windows {
			if !e.DueTo.Before(w.Down) && !e.DueFrom.After(w.Up) {
				l.Differences = append(l.Differences, fmt.Sprintf(
					"farmer %s (%s): contract %s expired for a due time (%s to %s) that fell while the node was down (%s to %s)",
					e.Farmer, e.Kind, short(e.FileHash), clock(e.DueFrom), clock(e.DueTo), clock(w.Down), clock(w.Up)))
			}
		}
	}
	if l.Differences == nil {
		l.Differences = []string{}
	}
	return l
}

// checkFarmer compares one farmer's record with its status. The node's
// count may trail an acknowledgement by a moment (the token hears of a
// proof after the contract committed it), so a short count is asked
// again for a few seconds before it is a difference.
func (r *run) checkFarmer(ctx context.Context, b *farmerLedger) (int64, []string) {
	var out []string
	if b.TokenLost {
		out = append(out, fmt.Sprintf("farmer %s (%s): the node forgot its token", b.ID, b.Kind))
	}
	low, high := b.Acked+b.Inferred, b.Acked+b.Inferred+b.Uncertain
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := r.api.status(ctx, b.ID)
		switch {
		case err != nil && (time.Now().After(deadline) || ctx.Err() != nil):
			return 0, append(out, fmt.Sprintf("farmer %s (%s): status/show failed: %v", b.ID, b.Kind, err))
		case err != nil:
		case st.Heartbeats >= low && st.Heartbeats <= high:
			return st.Heartbeats, out
		case st.Heartbeats > high:
			return st.Heartbeats, append(out, fmt.Sprintf(
				"farmer %s (%s): the node counts %d heartbeats, more than the %d answers acknowledged or possibly applied",
				b.ID, b.Kind, st.Heartbeats, high))
		case time.Now().After(deadline):
			return st.Heartbeats, append(out, fmt.Sprintf(
				"farmer %s (%s): the node counts %d heartbeats, fewer than the %d answers it acknowledged: %d lost",
				b.ID, b.Kind, st.Heartbeats, low, low-st.Heartbeats))
		}
		if !sleepUntil(ctx, nil, time.Now().Add(100*time.Millisecond)) {
			return 0, append(out, fmt.Sprintf("farmer %s (%s): not checked: %v", b.ID, b.Kind, ctx.Err()))
		}
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }
