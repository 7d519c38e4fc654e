package actors

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/microservice"
)

// indexOrder is what quoteIndex.of must answer for refs added in this
// order: newest first, quotes of one instant in the order they were added.
func indexOrder(added []quoteRef) []string {
	refs := slices.Clone(added)
	slices.SortStableFunc(refs, func(a, b quoteRef) int { return b.created.Compare(a.created) })
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.id
	}
	return out
}

// TestQuoteIndexOrder: a user's quotes come newest first whatever the
// order they were added in (start-up adds them in the store's order),
// with reads between the adds, and quotes of one instant in the order
// they were added. Owners are told apart case-insensitively.
func TestQuoteIndexOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }

	x := newQuoteIndex()
	if got := x.of("0xAbC", ""); len(got) != 0 {
		t.Fatalf("no quotes: got %v, want none", got)
	}
	steps := []struct {
		id      string
		created time.Time
		want    []string // of after the add
	}{
		{"a", at(10), []string{"a"}},
		{"b", at(20), []string{"b", "a"}},
		{"c", at(5), []string{"b", "a", "c"}},       // older than the last: out of order
		{"d", at(20), []string{"b", "d", "a", "c"}}, // same instant as b, added after it
		{"e", at(30), []string{"e", "b", "d", "a", "c"}},
		{"f", at(10), []string{"e", "b", "d", "a", "f", "c"}},
		{"g", at(1), []string{"e", "b", "d", "a", "f", "c", "g"}},
		{"h", at(30), []string{"e", "h", "b", "d", "a", "f", "c", "g"}},
	}
	for _, s := range steps {
		x.add("0xABC", s.id, "", s.created)
		if got := x.of("0xabc", ""); !slices.Equal(got, s.want) {
			t.Fatalf("after adding %s: got %v, want %v", s.id, got, s.want)
		}
	}
	if got := x.of("0xdef", ""); len(got) != 0 {
		t.Fatalf("another owner: got %v, want none", got)
	}

	// Random adds, with few distinct instants (many ties) and reads now
	// and then, against a sort of everything added.
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		x := newQuoteIndex()
		var added []quoteRef
		for i := range 200 {
			ref := quoteRef{id: strconv.Itoa(i), typ: []string{"sluice", "arweave"}[r.IntN(2)], created: at(r.IntN(20))}
			if r.IntN(4) > 0 && len(added) > 0 {
				ref.created = added[len(added)-1].created.Add(time.Duration(r.IntN(3)) * time.Second) // mostly in order
			}
			x.add("owner", ref.id, ref.typ, ref.created)
			added = append(added, ref)
			if r.IntN(10) == 0 {
				if got, want := x.of("owner", ""), indexOrder(added); !slices.Equal(got, want) {
					t.Fatalf("round %d, after %d adds: got %v, want %v", round, i+1, got, want)
				}
				arweave := slices.DeleteFunc(slices.Clone(added), func(q quoteRef) bool { return q.typ != "arweave" })
				if got, want := x.of("owner", "arweave"), indexOrder(arweave); !slices.Equal(got, want) {
					t.Fatalf("round %d, after %d adds, arweave only: got %v, want %v", round, i+1, got, want)
				}
			}
		}
		if got, want := x.of("owner", ""), indexOrder(added); !slices.Equal(got, want) {
			t.Fatalf("round %d: got %v, want %v", round, got, want)
		}
	}
}

// TestQuoteIndexOrderByWallClock: a quote made since the start (whose
// time has a monotonic reading) and the quotes loaded at start-up (whose
// times, from their records, have none) are ordered by the wall clock,
// as they would be after a restart.
func TestQuoteIndexOrderByWallClock(t *testing.T) {
	now := time.Now()
	x := newQuoteIndex()
	x.add("o", "loaded", "", now.Round(0))
	x.add("o", "new", "", now)
	if got, want := x.of("o", ""), []string{"loaded", "new"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (one instant, in the order added)", got, want)
	}
}

// TestQuoteIndexClaims: an id is claimed once, free again once unclaimed
// unless a quote was indexed with it.
func TestQuoteIndexClaims(t *testing.T) {
	x := newQuoteIndex()
	if !x.claim("q") || x.claim("q") {
		t.Fatal("claim q twice: got the second too, want only the first")
	}
	x.unclaim("q")
	if !x.claim("q") {
		t.Fatal("claim q after unclaim: got refused, want it")
	}
	x.add("o", "q", "", time.Now())
	x.unclaim("q")
	if x.claim("q") {
		t.Fatal("claim an indexed id: got it, want refused")
	}
}

// BenchmarkQuoteIndexAdd adds quotes, each the newest, for an owner who
// already has about n (between n and 2n): the cost of a getQuote's index
// update in a flood of quotes for one address.
func BenchmarkQuoteIndexAdd(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			ids := make([]string, 2*n)
			for i := range ids {
				ids[i] = fmt.Sprintf("%032x", i)
			}
			fill := func() *quoteIndex {
				x := newQuoteIndex()
				for i := range n {
					x.add("0xowner", ids[i], "", base.Add(time.Duration(i)*time.Millisecond))
				}
				return x
			}
			x := fill()
			k := n
			b.ResetTimer()
			for range b.N {
				if k == 2*n {
					b.StopTimer()
					x, k = fill(), n
					b.StartTimer()
				}
				x.add("0xowner", ids[k], "", base.Add(time.Duration(k)*time.Millisecond))
				k++
			}
		})
	}
}

// quoteUser signs a user's requests, each with a nonce greater than the
// last.
type quoteUser struct {
	key   *ecdsa.PrivateKey
	owner string
	nonce int64
}

func newQuoteUser() *quoteUser {
	key, _ := crypto.GenerateKey()
	return &quoteUser{key: key, owner: crypto.PubkeyToAddress(key.PublicKey).Hex(), nonce: time.Now().Unix()}
}

// sign returns the next nonce and its signature over quoteID and it.
func (u *quoteUser) sign(quoteID string) (nonce, signature string) {
	u.nonce = max(u.nonce+1, time.Now().Unix())
	nonce = strconv.FormatInt(u.nonce, 10)
	sig, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(quoteID, nonce))), u.key)
	sig[64] += 27
	return nonce, "0x" + hex.EncodeToString(sig)
}

// quoteAnswers is what the uploader API answers about a user's quote and
// their history: state, getStatus, getLink's links or error, history.
type quoteAnswers struct {
	Quote   string
	Status  int
	Link    string
	History string
}

func answersOf(t *testing.T, n *node, u *quoteUser, id string) quoteAnswers {
	t.Helper()
	ctx := context.Background()
	var a quoteAnswers
	q, err := n.Quote(ctx, id)
	if err != nil {
		t.Fatalf("Quote %s: %v", id, err)
	}
	b, _ := json.Marshal(q)
	a.Quote = string(b)
	if a.Status, err = n.QuoteStatus(ctx, id); err != nil {
		t.Fatalf("QuoteStatus %s: %v", id, err)
	}
	nonce, sig := u.sign(id)
	link, err := n.QuoteLink(ctx, id, nonce, sig)
	a.Link = string(link)
	if err != nil {
		a.Link = "error: " + err.Error()
	}
	h, err := n.History(ctx, u.owner, "", 1, 25)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	b, _ = json.Marshal(h)
	a.History = string(b)
	return a
}

// alive reports whether a quote has a live actor.
func alive(n *node, id string) bool { return n.dir.Alive(quoteIdentity(id)) }

// TestExpiredQuoteActorStops: a quote that expires (203) loses its actor,
// so a flood of quotes nobody uploads to does not stay in memory; its
// record answers getQuote's state, getStatus, getLink and getHistory as
// the actor did, an upload is refused as expired, and after a restart
// from the same store it gets no actor and the same answers.
func TestExpiredQuoteActorStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		cfg := Config{Uploads: UploadConfig{QuoteTTL: 5 * time.Second}}
		n := startWith(t, store, cfg)
		defer func() { n.stop() }() // the node running when the test ends
		u := newQuoteUser()
		quote := func() string {
			res, err := n.NewQuote(ctx, QuoteRequest{Type: "sluice", Lengths: []int64{5}, Duration: 60, HasDuration: true,
				ChainID: json.RawMessage("1"), Owner: u.owner})
			if err != nil {
				t.Fatal(err)
			}
			return res.QuoteID
		}
		old := quote()
		synctest.Wait()
		if !alive(n, old) {
			t.Fatal("a quote waiting for its files: got no actor, want one")
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		fresh := quote()
		synctest.Wait()
		if alive(n, old) {
			t.Fatal("an expired quote: got its actor alive, want it stopped")
		}
		if !alive(n, fresh) {
			t.Fatal("a quote waiting for its files: got no actor, want one")
		}
		before := answersOf(t, n, u, old)
		if before.Status != sluice.StatusQuoteExpired || before.Quote != storedJSON(t, store, old) ||
			before.Link != "error: "+ErrNotCompleted.Error() {
			t.Fatalf("expired quote without its actor: got %+v, want status 203, its record and getLink refused", before)
		}
		var h HistoryPage
		json.Unmarshal([]byte(before.History), &h)
		if len(h.Quotes) != 2 || h.Quotes[0].ID != fresh || h.Quotes[1].ID != old ||
			h.Quotes[1].Status != sluice.StatusQuoteExpired || h.Quotes[0].Status != sluice.StatusWaiting {
			t.Fatalf("history: got %s, want the fresh quote at 1 then the expired one at 203", before.History)
		}
		nonce, sig := u.sign(old)
		up := StartUpload{Files: []sluice.StoredFile{{Name: "a.txt", Pending: "0123456789abcdef0123456789abcdef", Length: 5}},
			Nonce: nonce, Signature: sig}
		if err := n.StartUpload(ctx, old, up); !errors.Is(err, sluice.ErrExpired) {
			t.Fatalf("upload to the expired quote: got %v, want expired", err)
		}
		n.stop()

		n = startWith(t, store, cfg)
		synctest.Wait()
		if alive(n, old) {
			t.Fatal("an expired quote after a restart: got an actor, want none")
		}
		if !alive(n, fresh) {
			t.Fatal("a quote waiting for its files after a restart: got no actor, want one")
		}
		if after := answersOf(t, n, u, old); after != before {
			t.Fatalf("expired quote after a restart:\ngot  %+v\nwant %+v", after, before)
		}
		sleepUntil(storedQuote(t, store, fresh).Expires.Add(time.Second))
		if alive(n, fresh) {
			t.Fatal("a quote expired after the restart: got its actor alive, want it stopped")
		}
		if st, err := n.QuoteStatus(ctx, fresh); err != nil || st != sluice.StatusQuoteExpired {
			t.Fatalf("getStatus of the quote expired after the restart: got %d, %v; want 203", st, err)
		}
	})
}

func storedJSON(t *testing.T, store *memStore, id string) string {
	t.Helper()
	b, _ := json.Marshal(storedQuote(t, store, id).Quote)
	return string(b)
}

// TestBuiltinQuoteActorStopsOnceFinal: a built-in quote being placed on
// farmers (300) keeps its actor; once all its pieces are held (400) or
// its storage period ended unplaced (401) the actor stops, and its record
// answers as the actor did (getLink gives the same links), also after a
// restart.
func TestBuiltinQuoteActorStopsOnceFinal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		u := newQuoteUser()
		end := time.Now().Add(time.Hour)
		var recs []sluice.Record
		for _, id := range []string{"held", "unplaced"} {
			q := builtinAt(id, sluice.StatusUploading, end)
			q.Owner, q.Created, q.Version = u.owner, time.Now(), 1
			recs = append(recs, quoteRecord(&q))
		}
		if err := store.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}
		cfg := Config{Uploads: UploadConfig{Redundancy: 1}}
		n := startWith(t, store, cfg)
		defer func() { n.stop() }() // the node running when the test ends
		synctest.Wait()
		if !alive(n, "held") || !alive(n, "unplaced") {
			t.Fatal("built-in quotes at 300: got an actor stopped, want both alive")
		}

		var piece sluice.Chunk
		for _, ch := range n.Engine.pool.take("farmer1", 1<<20, 0, time.Now()) {
			if ch.Quote == "held" {
				piece = ch
			}
		}
		time.Sleep(time.Minute)
		for _, id := range n.Engine.pool.prove("farmer1", piece.FileHash) {
			n.Engine.dir.Tell(quoteIdentity(id), &chunksHeld{})
		}
		synctest.Wait()
		if alive(n, "held") {
			t.Fatal("a built-in quote at 400: got its actor alive, want it stopped")
		}
		if !alive(n, "unplaced") {
			t.Fatal("a built-in quote still being placed: got its actor stopped, want it alive")
		}
		held := answersOf(t, n, u, "held")
		wantLink, _ := json.Marshal([]map[string]string{{"type": "sluice", "cid": "bafkreibheld"}})
		if held.Status != sluice.StatusDone || held.Link != string(wantLink) || held.Quote != storedJSON(t, store, "held") {
			t.Fatalf("done quote without its actor: got %+v, want status 400, link %s and its record", held, wantLink)
		}

		sleepUntil(end.Add(time.Minute)) // startWith's interval past the storage end
		if alive(n, "unplaced") {
			t.Fatal("a built-in quote failed at 401: got its actor alive, want it stopped")
		}
		unplaced := answersOf(t, n, u, "unplaced")
		if unplaced.Status != sluice.StatusInternalError {
			t.Fatalf("unplaced quote: got status %d, want 401", unplaced.Status)
		}
		n.stop()

		n = startWith(t, store, cfg)
		synctest.Wait()
		for id, want := range map[string]quoteAnswers{"held": held, "unplaced": unplaced} {
			if alive(n, id) {
				t.Fatalf("final quote %s after a restart: got an actor, want none", id)
			}
			got := answersOf(t, n, u, id)
			want.History = got.History // both quotes' histories are checked below
			if got != want {
				t.Fatalf("%s after a restart:\ngot  %+v\nwant %+v", id, got, want)
			}
		}
		var h HistoryPage
		hist, _ := n.History(ctx, u.owner, "", 1, 25)
		b, _ := json.Marshal(hist)
		json.Unmarshal(b, &h)
		if len(h.Quotes) != 2 {
			t.Fatalf("history after a restart: got %s, want both quotes", b)
		}
	})
}

// TestProxiedQuoteActorStopsAtFinalStatus: a handed-off quote keeps its
// actor while its microservice reports statuses that are not final; once
// it reports a final one (400) the actor stops, and getStatus answers the
// recorded 400 without asking the microservice again.
func TestProxiedQuoteActorStopsAtFinalStatus(t *testing.T) {
	fake := &fakeService{status: 300}
	srv := httptest.NewServer(fake) // outside the bubble: its goroutines are the network's
	defer srv.Close()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		reg := registerFake(t, store, srv.URL+"/")
		defer reg.Close()
		q := proxiedAt("p", sluice.StatusUploading, true)
		if err := store.Write(ctx, []sluice.Record{quoteRecord(&q)}); err != nil {
			t.Fatal(err)
		}
		n := startWith(t, store, Config{Uploads: UploadConfig{Registry: reg, Client: &microservice.Client{
			HTTP: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, Timeout: 5 * time.Second}}})
		defer n.stop()
		synctest.Wait()
		if st, err := n.QuoteStatus(ctx, "p"); err != nil || st != 300 {
			t.Fatalf("getStatus: got %d, %v; want 300", st, err)
		}
		synctest.Wait()
		if !alive(n, "p") {
			t.Fatal("a handed-off quote at 300: got its actor stopped, want it alive")
		}
		fake.mu.Lock()
		fake.status = 400
		fake.mu.Unlock()
		if st, err := n.QuoteStatus(ctx, "p"); err != nil || st != 400 {
			t.Fatalf("getStatus: got %d, %v; want 400", st, err)
		}
		synctest.Wait()
		if alive(n, "p") {
			t.Fatal("a handed-off quote at 400: got its actor alive, want it stopped")
		}
		fake.mu.Lock()
		fake.status = 404
		fake.mu.Unlock()
		if st, err := n.QuoteStatus(ctx, "p"); err != nil || st != 400 {
			t.Fatalf("getStatus once final: got %d, %v; want the recorded 400", st, err)
		}
	})
}

// TestHistoryReadsOnlyItsPage: a history page reads the quotes on it and
// no others, with the type filter applied from the index: a user given
// very many quotes (getQuote needs no signature) still gets a page for
// the price of a page. The index entry of a quote whose record cannot be
// read stands in for the cost: it fails only a page it is on.
func TestHistoryReadsOnlyItsPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := startWith(t, newMemStore(), Config{})
		defer n.stop()
		synctest.Wait()
		u := newQuoteUser()
		var ids []string
		for range 3 {
			time.Sleep(time.Second)
			res, err := n.NewQuote(ctx, QuoteRequest{Type: "sluice", Lengths: []int64{5}, Duration: 60, HasDuration: true,
				ChainID: json.RawMessage("1"), Owner: u.owner})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, res.QuoteID)
		}
		// The oldest entries: one of another type, one with no record.
		n.quotes.add(u.owner, "elsewhere", "arweave", time.Unix(1, 0))
		n.quotes.add(u.owner, "unreadable", "sluice", time.Unix(2, 0))
		h, err := n.History(ctx, u.owner, "sluice", 1, 3)
		if err != nil || h.MaxPages != 2 || len(h.Quotes) != 3 ||
			h.Quotes[0].ID != ids[2] || h.Quotes[1].ID != ids[1] || h.Quotes[2].ID != ids[0] {
			t.Fatalf("first page of 3 sluice quotes: got %+v, %v; want the three newest and 2 pages", h, err)
		}
		if _, err := n.History(ctx, u.owner, "sluice", 2, 3); !errors.Is(err, ErrQuoteNotFound) {
			t.Fatalf("the page holding the unreadable entry: got %v, want it not found", err)
		}
		if h, err := n.History(ctx, u.owner, "nope", 1, 3); err != nil || h.MaxPages != 0 || len(h.Quotes) != 0 {
			t.Fatalf("history of a type the user has no quotes of: got %+v, %v; want an empty page", h, err)
		}
	})
}
