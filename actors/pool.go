package actors

import (
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
)

// uploadPool holds the chunks of uploaded files that need farmers: each is
// offered until Want farmers hold it with a live contract, and counts as
// held once that many have had a proof accepted. Farmers take these before
// prototype chunks. It is rebuilt at start-up from the quotes being stored
// and the live contracts; shared by the request path and contract actors,
// hence the lock.
//
// Farmers full of prototype contracts never ask for more, so while a chunk
// lacks holders the pool makes room for it: at a prototype contract's due
// time (its challenge answered) the contract may end early, the freed room
// counted as a claim of that farmer on the chunk. While the claim stands the
// farmer gets no prototype chunks in the claimed room, so its next /chunk
// call takes the uploaded piece. A claim lapses after claimTTL, so a farmer
// that never comes back does not keep others from making room.
type uploadPool struct {
	mu       sync.Mutex
	want     int
	claimTTL time.Duration
	chunks   map[sluice.FileHash]*poolChunk
	byQuote  map[string][]sluice.FileHash
	// open lists the chunks short of holders, oldest first; chunks that
	// filled up are dropped from it lazily, as it is walked.
	open []*poolChunk
	// claimed indexes the claims by farmer.
	claimed map[string]map[*poolChunk]bool
	// needSource, when set, is told which stored file each chunk is read
	// from and until when it may be handed out (its end; zero: never
	// ends), so that the file stays that long (blobNeeds). Called with
	// mu held.
	needSource func(h sluice.FileHash, source string, end time.Time)
}

type poolChunk struct {
	ch sluice.Chunk
	// quotes are the quotes whose files hold these bytes: pieces with the
	// same bytes are one chunk (a farmer can hold a file hash only once),
	// and each quote is told when it is held.
	quotes  []string
	holders map[string]bool   // farmers with a live contract on it
	proven  map[string]bool   // of those, farmers with an accepted proof
	claims  map[string]*claim // farmers making room for it
	// unfit are farmers found too small to ever hold it, until when.
	unfit map[string]time.Time
	// failed are farmers whose contract on it expired: it is not handed
	// to them again (a cheater would otherwise take it over and over).
	failed map[string]bool
	listed bool // in open
}

// claim is room a farmer is making for a chunk by ending prototype
// contracts.
type claim struct {
	freed int64
	until time.Time
}

func newUploadPool(want int, claimTTL time.Duration) *uploadPool {
	return &uploadPool{want: max(1, want), claimTTL: claimTTL,
		chunks: map[sluice.FileHash]*poolChunk{}, byQuote: map[string][]sluice.FileHash{},
		claimed: map[string]map[*poolChunk]bool{}}
}

func (p *uploadPool) short(c *poolChunk) bool { return len(c.holders) < p.want }

// setHolder adds or removes farmer as a holder of c; a chunk short of
// holders again goes back on the open list.
func (p *uploadPool) setHolder(c *poolChunk, farmer string, on bool) {
	if on {
		c.holders[farmer] = true
		p.dropClaim(c, farmer)
		return
	}
	delete(c.holders, farmer)
	delete(c.proven, farmer)
	if p.short(c) && !c.listed {
		c.listed = true
		p.open = append(p.open, c)
	}
}

// stored tells whether c's storage period is still running at now (a
// piece whose quote's duration is over is not handed out again).
func stored(c *poolChunk, now time.Time) bool {
	return c.ch.End.IsZero() || now.Before(c.ch.End)
}

// walk calls f on each open chunk, oldest first, until f returns false,
// dropping from the list the chunks no longer short of holders and those
// whose storage period is over at now.
func (p *uploadPool) walk(now time.Time, f func(c *poolChunk) bool) {
	kept := p.open[:0]
	for i, c := range p.open {
		if !p.short(c) || !stored(c, now) {
			c.listed = false
			continue
		}
		kept = append(kept, c)
		if !f(c) {
			kept = append(kept, p.open[i+1:]...)
			break
		}
	}
	clear(p.open[len(kept):])
	p.open = kept
}

func (p *uploadPool) addClaim(c *poolChunk, farmer string, cl *claim) {
	c.claims[farmer] = cl
	if p.claimed[farmer] == nil {
		p.claimed[farmer] = map[*poolChunk]bool{}
	}
	p.claimed[farmer][c] = true
}

func (p *uploadPool) dropClaim(c *poolChunk, farmer string) {
	if _, ok := c.claims[farmer]; !ok {
		return
	}
	delete(c.claims, farmer)
	delete(p.claimed[farmer], c)
	if len(p.claimed[farmer]) == 0 {
		delete(p.claimed, farmer)
	}
}

// add offers a quote's chunks.
func (p *uploadPool) add(quote string, chunks []sluice.Chunk) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ch := range chunks {
		c, ok := p.chunks[ch.FileHash]
		if !ok {
			c = &poolChunk{ch: ch, holders: map[string]bool{}, proven: map[string]bool{},
				claims: map[string]*claim{}, unfit: map[string]time.Time{}, failed: map[string]bool{}, listed: true}
			p.chunks[ch.FileHash] = c
			p.open = append(p.open, c)
		} else if laterEnd(ch.End, c.ch.End) {
			// The same bytes wanted for longer: contracts made from now
			// on last until the later end, and read the bytes from the
			// later quote's file, kept (needSource) for as long: the
			// first file may go before. A piece dropped from the open
			// list at its old end is offered again.
			c.ch.End, c.ch.Source, c.ch.Offset = ch.End, ch.Source, ch.Offset
			if !c.listed && p.short(c) {
				c.listed = true
				p.open = append(p.open, c)
			}
		}
		if p.needSource != nil {
			// The file it is read from now, until the chunk's end, and this
			// quote's own file when it is another (contracts made while
			// that was the source, before a restart re-added the quotes in
			// another order, read from it) until the quote's end. The same
			// file is declared once, with the later end.
			if c.ch.Source != "" {
				p.needSource(c.ch.FileHash, c.ch.Source, c.ch.End)
			}
			if ch.Source != "" && ch.Source != c.ch.Source {
				p.needSource(ch.FileHash, ch.Source, ch.End)
			}
		}
		// A quote is listed on a chunk exactly when the chunk is listed
		// for the quote (a re-add after a restart, or the same bytes twice
		// in one upload, changes neither).
		if !slices.Contains(c.quotes, quote) {
			c.quotes = append(c.quotes, quote)
			p.byQuote[quote] = append(p.byQuote[quote], ch.FileHash)
		}
	}
}

// take hands farmer up to max chunks (0: no cap) fitting in room bytes,
// marking it a holder: first those it made room for, then the oldest. The
// caller gives back what it does not use.
func (p *uploadPool) take(farmer string, room int64, max int, now time.Time) []sluice.Chunk {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []sluice.Chunk
	give := func(c *poolChunk) bool {
		if max > 0 && len(out) >= max {
			return false
		}
		if p.short(c) && !c.holders[farmer] && !c.failed[farmer] && c.ch.Size <= room {
			p.setHolder(c, farmer, true)
			room -= c.ch.Size
			out = append(out, c.ch)
		}
		return true
	}
	for c := range p.claimed[farmer] {
		if stored(c, now) {
			give(c)
		}
	}
	p.walk(now, give)
	return out
}

// hold marks farmer a holder (a live contract loaded at start-up).
func (p *uploadPool) hold(farmer string, h sluice.FileHash, proven bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.chunks[h]; ok {
		p.setHolder(c, farmer, true)
		if proven {
			c.proven[farmer] = true
		}
	}
}

// lost takes farmer off a chunk (its contract closed or was never made):
// the chunk is offered again, not to farmer if its contract expired.
func (p *uploadPool) lost(farmer string, h sluice.FileHash, expired bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.chunks[h]; ok {
		p.setHolder(c, farmer, false)
		if expired {
			c.failed[farmer] = true
		}
	}
}

// laterEnd tells whether storage period end a outlasts b (a zero end is
// no end).
func laterEnd(a, b time.Time) bool {
	return !b.IsZero() && (a.IsZero() || a.After(b))
}

// prove records farmer's first accepted proof on a chunk, and returns the
// quotes whose files hold its bytes: each may now be held.
func (p *uploadPool) prove(farmer string, h sluice.FileHash) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.chunks[h]
	if !ok {
		return nil
	}
	c.proven[farmer] = true
	return slices.Clone(c.quotes)
}

// held reports whether every chunk of a quote has Want proven holders.
func (p *uploadPool) held(quote string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	hashes, ok := p.byQuote[quote]
	if !ok {
		return false
	}
	for _, h := range hashes {
		if len(p.chunks[h].proven) < p.want {
			return false
		}
	}
	return true
}

// quotes lists the quotes with chunks in the pool.
func (p *uploadPool) quotes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.byQuote))
	for q := range p.byQuote {
		out = append(out, q)
	}
	return out
}

// displace decides whether a prototype contract of farmer, size bytes, due
// now with its challenge answered, ends to make room for a chunk short of
// holders. It does when the farmer is making room for a chunk and has not
// freed enough yet, or when a chunk it neither holds nor is known too small
// for has fewer holders and claims than wanted.
func (p *uploadPool) displace(farmer string, size int64, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.open) == 0 {
		return false
	}
	for c := range p.claimed[farmer] {
		if cl := c.claims[farmer]; !now.Before(cl.until) || !stored(c, now) {
			p.dropClaim(c, farmer)
		} else if cl.freed < c.ch.Size && p.short(c) {
			cl.freed += size
			return true
		}
	}
	ok := false
	p.walk(now, func(c *poolChunk) bool {
		if c.holders[farmer] || c.failed[farmer] || c.claims[farmer] != nil {
			return true
		}
		if until, found := c.unfit[farmer]; found {
			if now.Before(until) {
				return true
			}
			delete(c.unfit, farmer)
		}
		for f, cl := range c.claims {
			if !now.Before(cl.until) {
				p.dropClaim(c, f)
			}
		}
		if len(c.holders)+len(c.claims) >= p.want {
			return true
		}
		p.addClaim(c, farmer, &claim{freed: size, until: now.Add(p.claimTTL)})
		ok = true
		return false
	})
	return ok
}

// reserved is the room, of the room farmer has left after take, kept for
// chunks it is making room for and did not take: no prototype chunks go
// there. A claim counts only the room still free for it, so a farmer that
// filled part of its freed room with another piece goes on making room.
// capacity is what the farmer holds plus what it asked for; a claimed
// chunk larger than that can never be taken, so the claim is dropped and
// the farmer is not asked to make room for that chunk again for a while.
func (p *uploadPool) reserved(farmer string, room, capacity int64, now time.Time) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var kept int64
	for c := range p.claimed[farmer] {
		cl := c.claims[farmer]
		switch {
		case !now.Before(cl.until) || !p.short(c) || !stored(c, now):
			p.dropClaim(c, farmer)
		case c.ch.Size > capacity:
			p.dropClaim(c, farmer)
			c.unfit[farmer] = now.Add(p.claimTTL)
		default:
			cl.freed = min(cl.freed, c.ch.Size, room-kept)
			kept += cl.freed
		}
	}
	return kept
}
