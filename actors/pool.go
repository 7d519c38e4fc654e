package actors

import (
	"sync"

	"github.com/sluicehq/sluice"
)

// uploadPool holds the chunks of uploaded files that need farmers: each is
// offered until Want farmers hold it with a live contract, and counts as
// held once that many have had a proof accepted. Farmers take these before
// prototype chunks. It is rebuilt at start-up from the quotes being stored
// and the live contracts; shared by the request path and contract actors,
// hence the lock.
type uploadPool struct {
	mu      sync.Mutex
	want    int
	chunks  map[sluice.FileHash]*poolChunk
	order   []sluice.FileHash
	byQuote map[string][]sluice.FileHash
}

type poolChunk struct {
	ch      sluice.Chunk
	holders map[string]bool // farmers with a live contract on it
	proven  map[string]bool // of those, farmers with an accepted proof
}

func newUploadPool(want int) *uploadPool {
	return &uploadPool{want: max(1, want), chunks: map[sluice.FileHash]*poolChunk{}, byQuote: map[string][]sluice.FileHash{}}
}

// add offers a quote's chunks.
func (p *uploadPool) add(quote string, chunks []sluice.Chunk) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ch := range chunks {
		if _, ok := p.chunks[ch.FileHash]; !ok {
			p.chunks[ch.FileHash] = &poolChunk{ch: ch, holders: map[string]bool{}, proven: map[string]bool{}}
			p.order = append(p.order, ch.FileHash)
		}
		p.byQuote[quote] = append(p.byQuote[quote], ch.FileHash)
	}
}

// take hands farmer up to max chunks (0: no cap) fitting in room bytes,
// marking it a holder. The caller gives back what it does not use.
func (p *uploadPool) take(farmer string, room int64, max int) []sluice.Chunk {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []sluice.Chunk
	for _, h := range p.order {
		if max > 0 && len(out) >= max {
			break
		}
		c := p.chunks[h]
		if len(c.holders) >= p.want || c.holders[farmer] || c.ch.Size > room {
			continue
		}
		c.holders[farmer] = true
		room -= c.ch.Size
		out = append(out, c.ch)
	}
	return out
}

// hold marks farmer a holder (a live contract loaded at start-up).
func (p *uploadPool) hold(farmer string, h sluice.FileHash, proven bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.chunks[h]; ok {
		c.holders[farmer] = true
		if proven {
			c.proven[farmer] = true
		}
	}
}

// lost takes farmer off a chunk (its contract closed or was never made):
// the chunk is offered again.
func (p *uploadPool) lost(farmer string, h sluice.FileHash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.chunks[h]; ok {
		delete(c.holders, farmer)
		delete(c.proven, farmer)
	}
}

// prove records farmer's first accepted proof on a chunk.
func (p *uploadPool) prove(farmer string, h sluice.FileHash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.chunks[h]; ok {
		c.proven[farmer] = true
	}
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
