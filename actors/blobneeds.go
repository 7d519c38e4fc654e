package actors

import (
	"sync"
	"time"

	"github.com/sluicehq/sluice"
)

// blobNeeds decides when an uploaded file leaves the temporary store. A
// file is content-addressed, so one blob may be the file of several
// quotes, on any storage type; it stays while any of them needs it:
//
//   - an unfinished quote needs its files (it still has to seal, pay,
//     cut or hand them off);
//   - a built-in quote that is done (400) needs them until its storage
//     period ends: the node serves them back and hands out their pieces;
//   - any other final quote (a microservice's, or a failed one) needs
//     them no more;
//   - a piece in the upload pool needs the file it is read from while it
//     may be handed out, and an interval more (needPieceSource), whichever
//     quote that file came from.
//
// Once nobody needs a blob it is released: removed after the retention
// period, counted from the last need's end. Needs live in memory; start-up
// declares every quote's again (recoverQuotes) and releases the blobs no
// quote claims, so the store's in-memory schedule is rebuilt.
//
// Every Keep and Release of the blob store goes through here, under mu, so
// a release decided for one quote cannot undo another quote's claim.
type blobNeeds struct {
	mu    sync.Mutex
	blobs Blobs
	grace time.Duration
	now   func() time.Time
	// until: per CID, each quote (or piece) that needs it and until when
	// (zero: until it says otherwise). Needs that have ended are pruned
	// whenever their CID is settled, and by the sweep.
	until map[string]map[string]time.Time
	// open: the CIDs each unfinished quote has claimed, including blobs its
	// seal step made that its record does not name yet (a seal that failed
	// half-way), so that its end releases them too.
	open map[string][]string
	// calls counts need calls since the last sweep of until (see need).
	calls int
}

func newBlobNeeds(b Blobs, grace time.Duration, now func() time.Time) *blobNeeds {
	return &blobNeeds{blobs: b, grace: grace, now: now,
		until: map[string]map[string]time.Time{}, open: map[string][]string{}}
}

// need records that quote needs cids until the given time (zero: until it
// says otherwise). A need with an end also ends every claim the quote made
// before, on any CID.
func (n *blobNeeds) need(quote string, cids []string, until time.Time) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	all := cids
	if prev := n.open[quote]; len(prev) > 0 {
		all = append(append([]string(nil), prev...), cids...)
	}
	if until.IsZero() {
		n.open[quote] = dedupe(all)
	} else {
		delete(n.open, quote)
	}
	// A need that ends in the future is pruned only when its CID is
	// settled again, which may never happen: sweep them all every so many
	// calls, as many as the map is long, so the work per call stays
	// constant and the map holds at most twice the needs still running.
	if n.calls++; n.calls > max(16, len(n.until)) {
		n.calls = 0
		n.sweep()
	}
	for _, cid := range all {
		m := n.until[cid]
		if m == nil {
			m = map[string]time.Time{}
			n.until[cid] = m
		}
		m[quote] = until
		n.settle(cid, m)
	}
}

// settle keeps or releases one blob after its needs changed. n.mu held.
func (n *blobNeeds) settle(cid string, m map[string]time.Time) {
	now := n.now()
	var last time.Time
	for q, u := range m {
		switch {
		case u.IsZero():
			n.blobs.Keep(cid)
			return
		case !u.After(now):
			delete(m, q)
		case u.After(last):
			last = u
		}
	}
	if len(m) == 0 {
		delete(n.until, cid)
		n.blobs.Release(cid, n.grace)
		return
	}
	n.blobs.Release(cid, last.Sub(now)+n.grace)
}

// sweep forgets the needs that have ended. Their blobs' releases were
// armed when they were last settled, for the latest end. n.mu held.
func (n *blobNeeds) sweep() {
	now := n.now()
	for cid, m := range n.until {
		for q, u := range m {
			if !u.IsZero() && !u.After(now) {
				delete(m, q)
			}
		}
		if len(m) == 0 {
			delete(n.until, cid)
		}
	}
}

// releaseUnclaimed releases the stored blobs that no quote needs: files of
// quotes whose needs ended before this start (their release schedule was
// lost with the process), and blobs a seal made for a record that never
// committed (sealing again makes them again). Called once every quote's
// needs are declared.
func (n *blobNeeds) releaseUnclaimed() (int, error) {
	cids, err := n.blobs.List()
	if err != nil {
		return 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	released := 0
	for _, cid := range cids {
		if _, claimed := n.until[cid]; !claimed {
			n.blobs.Release(cid, n.grace)
			released++
		}
	}
	return released, nil
}

func dedupe(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// needFiles declares what quote q needs of the temporary store now.
func (e *Engine) needFiles(q *sluice.Quote) {
	var cids []string
	for _, f := range q.Files {
		if f.Sealed() {
			cids = append(cids, f.CID)
		}
	}
	e.needs.need(q.ID, cids, e.filesNeededUntil(q))
}

// needPieceSource keeps the file an uploaded piece is read from while the
// piece may be handed out, and an interval more: a contract made just
// before the end downloads the bytes for its first proof. Pieces with the
// same bytes are one piece, read from one quote's file; that quote may
// end first, so the piece holds its own need, one per file it is read
// from (a need that never ends on one is not ended by a finite one on
// another). Its name cannot be a quote's: quote ids hold no control
// characters.
func (e *Engine) needPieceSource(h sluice.FileHash, source string, end time.Time) {
	if !end.IsZero() {
		end = end.Add(e.cfg.Terms.Interval)
	}
	e.needs.need("\x00piece\x00"+h.String()+"\x00"+source, []string{source}, end)
}

// filesNeededUntil is when q stops needing its files: zero while it is
// unfinished, the end of its storage period for a built-in quote that is
// done (zero if that never ends), now for every other final quote.
func (e *Engine) filesNeededUntil(q *sluice.Quote) time.Time {
	switch {
	case !sluice.QuoteFinal(q.Status):
		return time.Time{}
	case q.BackendID == "" && q.Type == e.cfg.Uploads.Builtin && q.Status == sluice.StatusDone:
		if len(q.Chunks) == 0 {
			return e.now() // nothing was placed: no bytes to serve
		}
		return q.Chunks[0].End // cut gives every piece of a quote the same end
	default:
		return e.now()
	}
}
