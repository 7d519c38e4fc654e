package actors

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func poolChunkOf(b byte, size int64) sluice.Chunk {
	return sluice.Chunk{FileHash: sluice.FileHash{b}, Size: size, Quote: "q"}
}

// The pool asks full farmers to end prototype contracts until the pieces
// short of holders have room, no more.
func TestPoolDisplaceMakesRoomOnce(t *testing.T) {
	const kib = 1 << 10
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(2, time.Minute)
	if p.displace("f1", 32*kib, t0) {
		t.Fatal("an empty pool displaced a contract")
	}
	p.add("q", []sluice.Chunk{poolChunkOf(1, 64*kib)})

	steps := []struct {
		farmer string
		want   bool
	}{
		{"f1", true}, {"f1", true}, // 64 KiB freed: enough for the piece
		{"f1", false},
		{"f2", true}, {"f2", true},
		{"f3", false}, // two farmers already make room for the two copies
	}
	for i, s := range steps {
		if got := p.displace(s.farmer, 32*kib, t0); got != s.want {
			t.Fatalf("step %d: displace(%s) = %v, want %v", i, s.farmer, got, s.want)
		}
	}

	// The claimed room is kept from prototype chunks, up to the room asked.
	if got := p.reserved("f1", 256*kib, 256*kib, t0); got != 64*kib {
		t.Fatalf("reserved f1 = %d, want %d", got, 64*kib)
	}
	if got := p.reserved("f1", 32*kib, 256*kib, t0); got != 32*kib {
		t.Fatalf("reserved f1 in 32 KiB of room = %d, want %d", got, 32*kib)
	}
	if got := p.reserved("f3", 256*kib, 256*kib, t0); got != 0 {
		t.Fatalf("reserved f3 = %d, want 0", got)
	}

	// Taking the piece ends the claim.
	if got := p.take("f1", 64*kib, 0, time.Time{}); len(got) != 1 {
		t.Fatalf("take f1: %d pieces, want 1", len(got))
	}
	if got := p.reserved("f1", 256*kib, 256*kib, t0); got != 0 {
		t.Fatalf("reserved f1 after taking = %d, want 0", got)
	}
	if got := p.take("f2", 64*kib, 0, time.Time{}); len(got) != 1 {
		t.Fatalf("take f2: %d pieces, want 1", len(got))
	}
	if p.displace("f3", 32*kib, t0) {
		t.Fatal("displaced a contract with every piece held")
	}

	// A holder lost: the piece is short again and room is made anew.
	p.lost("f1", sluice.FileHash{1}, false)
	if !p.displace("f3", 32*kib, t0) {
		t.Fatal("no room made for a piece that lost a holder")
	}
}

func TestPoolClaimsLapse(t *testing.T) {
	const kib = 1 << 10
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Minute)
	p.add("q", []sluice.Chunk{poolChunkOf(1, 64*kib)})
	if !p.displace("f1", 32*kib, t0) {
		t.Fatal("no room asked of f1")
	}
	if p.displace("f2", 32*kib, t0.Add(59*time.Second)) {
		t.Fatal("f2 asked while f1's claim stands")
	}
	// f1 never came back: its claim lapses and f2 makes the room instead.
	if !p.displace("f2", 32*kib, t0.Add(time.Minute)) {
		t.Fatal("f1's claim did not lapse")
	}
	if got := p.reserved("f1", 64*kib, 64*kib, t0.Add(time.Minute)); got != 0 {
		t.Fatalf("a lapsed claim still reserves %d bytes", got)
	}
}

// A farmer too small for a piece is not asked to make room for it: its
// prototype contracts would end for nothing.
func TestPoolUnfitFarmer(t *testing.T) {
	const kib = 1 << 10
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Minute)
	p.add("q", []sluice.Chunk{poolChunkOf(1, 1024*kib)})
	if !p.displace("small", 32*kib, t0) {
		t.Fatal("no room asked of the farmer")
	}
	// It holds 96 KiB and asks for 32 KiB: it can never take 1 MiB.
	if got := p.reserved("small", 32*kib, 128*kib, t0); got != 0 {
		t.Fatalf("reserved %d bytes for a piece the farmer cannot hold", got)
	}
	if p.displace("small", 32*kib, t0.Add(time.Second)) {
		t.Fatal("asked a farmer known too small to make room")
	}
	if !p.displace("big", 32*kib, t0.Add(time.Second)) {
		t.Fatal("the small farmer's dropped claim still blocks others")
	}
}

// A farmer gets the piece it made room for before older ones, and a claim
// counts only the room still free for it.
func TestPoolClaimedPieceFirst(t *testing.T) {
	const kib = 1 << 10
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Minute)
	p.add("q1", []sluice.Chunk{poolChunkOf(1, 32*kib)})  // small, older
	p.add("q2", []sluice.Chunk{poolChunkOf(2, 128*kib)}) // large
	if !p.displace("f2", 32*kib, t0) {                   // f2 claims the small one
		t.Fatal("no room asked of f2")
	}
	for range 4 {
		if !p.displace("f1", 32*kib, t0) {
			t.Fatal("no room asked of f1")
		}
	}
	if got := p.take("f1", 128*kib, 0, time.Time{}); len(got) != 1 || got[0].FileHash != (sluice.FileHash{2}) {
		t.Fatalf("take f1: %v, want the large piece it made room for", got)
	}

	// f3 makes room for a piece, then fills part of it with another one:
	// its claim shrinks to what is left and it goes on making room.
	p.add("q3", []sluice.Chunk{poolChunkOf(3, 64*kib)})
	p.lost("f2", sluice.FileHash{1}, false) // drop f2's claim on the small one
	p.reserved("f2", 0, 1<<20, t0)
	for range 2 {
		if !p.displace("f3", 32*kib, t0) {
			t.Fatal("no room asked of f3")
		}
	}
	if got := p.reserved("f3", 32*kib, 1<<20, t0); got != 32*kib {
		t.Fatalf("reserved %d in 32 KiB of room, want all of it", got)
	}
	if !p.displace("f3", 32*kib, t0) {
		t.Fatal("f3 stopped making room with only 32 KiB free for a 64 KiB piece")
	}
}

// A farmer whose contract on a piece expired is not given it again.
func TestPoolFailedFarmer(t *testing.T) {
	const kib = 1 << 10
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Minute)
	p.add("q", []sluice.Chunk{poolChunkOf(1, 32*kib)})
	if got := p.take("cheater", 32*kib, 0, time.Time{}); len(got) != 1 {
		t.Fatalf("take: %d pieces, want 1", len(got))
	}
	p.lost("cheater", sluice.FileHash{1}, true)
	if got := p.take("cheater", 32*kib, 0, time.Time{}); len(got) != 0 {
		t.Fatal("the piece went back to the farmer that failed it")
	}
	if p.displace("cheater", 32*kib, t0) {
		t.Fatal("asked the farmer that failed the piece to make room for it")
	}
	if got := p.take("honest", 32*kib, 0, time.Time{}); len(got) != 1 {
		t.Fatal("the piece was not offered to another farmer")
	}
}

// Two quotes whose files have the same bytes share one chunk: proving it
// names both, both are held once it has its holders, and contracts made
// after the longer-lived quote joined last until its end.
func TestPoolSharedBytesHoldEveryQuote(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Minute)
	a, b := poolChunkOf(1, 1024), poolChunkOf(1, 1024)
	a.Quote, a.End = "qa", t0.Add(time.Hour)
	b.Quote, b.End = "qb", t0.Add(48*time.Hour)
	p.add("qa", []sluice.Chunk{a})
	p.add("qb", []sluice.Chunk{b})
	p.add("qb", []sluice.Chunk{b}) // re-added after a restart: no change

	got := p.take("f1", 1<<20, 0, time.Time{})
	if len(got) != 1 || !got[0].End.Equal(b.End) {
		t.Fatalf("take: %+v, want the one shared chunk, lasting until the later end %s", got, b.End)
	}
	if p.held("qa") || p.held("qb") {
		t.Fatal("held before any proof")
	}
	quotes := p.prove("f1", a.FileHash)
	if len(quotes) != 2 || quotes[0] != "qa" || quotes[1] != "qb" {
		t.Fatalf("prove named %v, want [qa qb]", quotes)
	}
	if !p.held("qa") || !p.held("qb") {
		t.Fatal("a proven shared chunk must hold both quotes")
	}
	if n := len(p.byQuote["qb"]); n != 1 {
		t.Fatalf("qb lists %d chunks, want 1", n)
	}
}

// A piece whose storage period is over is not handed out again, nor made
// room for, when its holders' contracts end.
func TestPoolPiecePastItsEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Minute)
	ch := poolChunkOf(1, 1024)
	ch.End = t0.Add(time.Hour)
	p.add("q", []sluice.Chunk{ch})
	if got := p.take("f1", 1<<20, 0, t0); len(got) != 1 {
		t.Fatalf("take before the end: %d chunks, want 1", len(got))
	}
	p.lost("f1", ch.FileHash, false) // its contract ended at the end
	end := t0.Add(time.Hour)
	if got := p.take("f2", 1<<20, 0, end); len(got) != 0 {
		t.Fatalf("take at the end: %+v, want nothing", got)
	}
	if p.displace("f3", 1024, end) {
		t.Fatal("a prototype contract was displaced for a piece past its end")
	}
}

// A piece dropped from the open list at its end is offered again when a
// later quote with the same bytes moves its end (docs/uploader.md).
func TestPoolPieceOfferedAgainForALaterEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Minute)
	a := poolChunkOf(1, 1024)
	a.End = t0.Add(time.Hour)
	p.add("qa", []sluice.Chunk{a})
	if got := p.take("f1", 1<<20, 0, t0); len(got) != 1 {
		t.Fatalf("take: %d", len(got))
	}
	p.prove("f1", a.FileHash)
	end := t0.Add(time.Hour)
	p.lost("f1", a.FileHash, false) // contract ended at qa's end
	// Some farmer asks after the end: the piece is delisted.
	if got := p.take("f2", 1<<20, 0, end); len(got) != 0 {
		t.Fatalf("take at end: %+v", got)
	}
	// A new quote uploads the same bytes for another day.
	b := a
	b.Quote = "qb"
	b.End = end.Add(24 * time.Hour)
	p.add("qb", []sluice.Chunk{b})
	later := end.Add(time.Minute)
	if got := p.take("f3", 1<<20, 0, later); len(got) != 1 {
		t.Fatalf("qb's piece (end %s) not offered at %s: %d chunks; open list %d", b.End, later, len(got), len(p.open))
	}
}

// No prototype contract ends to make room for a claimed piece whose
// storage period is over.
func TestPoolNoRoomMadeForAClaimPastItsEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newUploadPool(1, time.Hour)
	ch := poolChunkOf(1, 64*1024)
	ch.End = t0.Add(time.Minute)
	p.add("q", []sluice.Chunk{ch})
	if !p.displace("f1", 16*1024, t0) { // claim, freed 16 KiB of 64
		t.Fatal("no claim made")
	}
	after := t0.Add(2 * time.Minute) // past the piece's end, claim still standing
	if p.displace("f1", 16*1024, after) {
		t.Fatal("a prototype contract was ended to make room for a piece past its end")
	}
}
