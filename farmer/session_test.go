package farmer

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

// These tests drive the loop's state transitions directly, with explicit
// times and without starting jobs or talking to a node.

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func testSession(t *testing.T) *session {
	t.Helper()
	cfg, err := Config{Node: "http://node.invalid", Address: "0xabc", Size: 1 << 20, Dir: t.TempDir(), Log: zap.NewNop()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Dir, "chunks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return newSession(cfg, nil, "00112233445566778899aabbccddeeff", proof.DefaultParams(), dir)
}

// held adds a contract in state st whose chunk is on disk, with its
// deadline and due time dl and after from t0.
func (s *session) testContract(t *testing.T, seed string, st cstate, dl, after time.Duration) *contract {
	t.Helper()
	item, data := seededItem(t, seed, 4*1024)
	if err := WriteChunk(s.path(item.FileHash), bytes.NewReader(data), item); err != nil {
		t.Fatal(err)
	}
	c := &contract{hash: item.FileHash, tag: item.Tag, ch: item.Challenge, deadline: t0.Add(dl), after: t0.Add(after), heapIdx: -1}
	s.contracts[c.hash] = c
	s.held += c.tag.Size
	switch st {
	case stProve:
		s.toProve(c)
	case stReady:
		s.toReady(c, t0, t0.Add(time.Second))
	case stAnswered:
		s.toAnswered(c)
	default:
		c.state = st
		s.schedule(c, c.deadline)
	}
	return c
}

func (s *session) fileExists(c *contract) bool {
	_, err := os.Stat(s.path(c.hash))
	return err == nil
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name      string
		report    ReportItem
		retried   bool
		wantState cstate
		dropped   bool
		accepted  int64
		rejected  int64
	}{
		{"ok", ReportItem{Status: StatusOK}, false, stAnswered, false, 1, 0},
		{"already answered", ReportItem{Error: sluice.MsgAlreadyAnswered}, false, stAnswered, false, 0, 0},
		{"invalid, first time", ReportItem{Error: sluice.MsgProofInvalid}, false, stProve, false, 0, 1},
		{"corrupted, first time", ReportItem{Error: sluice.MsgProofCorrupted}, false, stProve, false, 0, 1},
		{"invalid, second time", ReportItem{Error: sluice.MsgProofInvalid}, true, 0, true, 0, 1},
		{"expired", ReportItem{Error: sluice.MsgContractExpired}, false, 0, true, 0, 0},
		{"not found", ReportItem{Error: sluice.MsgContractNotFound}, false, 0, true, 0, 0},
		{"no more challenges", ReportItem{Status: sluice.MsgNoMoreChallenges}, false, 0, true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSession(t)
			c := s.testContract(t, "judge", stSending, 300*time.Second, 301*time.Second)
			c.retried = tt.retried
			now := t0.Add(2 * time.Second)
			s.judge(c, ReportItem{FileHash: c.hash, Status: tt.report.Status, Error: tt.report.Error}, now)
			if c.dropped != tt.dropped {
				t.Fatalf("got dropped=%v, want %v", c.dropped, tt.dropped)
			}
			if tt.dropped {
				if s.fileExists(c) || s.contracts[c.hash] != nil || s.held != 0 || c.heapIdx != -1 {
					t.Fatal("got a dropped contract still held, want it and its file gone")
				}
			} else {
				if c.state != tt.wantState || !s.fileExists(c) {
					t.Fatalf("got state %d, want %d with the file kept", c.state, tt.wantState)
				}
				wantWake := c.deadline
				if tt.wantState == stAnswered {
					wantWake = c.after
				}
				if c.heapIdx < 0 || !c.wake.Equal(wantWake) {
					t.Fatalf("got wake %v (in heap: %v), want %v", c.wake.Sub(t0), c.heapIdx >= 0, wantWake.Sub(t0))
				}
			}
			if s.count.accepted != tt.accepted || s.count.rejected != tt.rejected {
				t.Fatalf("got accepted %d rejected %d, want %d %d", s.count.accepted, s.count.rejected, tt.accepted, tt.rejected)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	s := testSession(t)
	missed := s.testContract(t, "missed", stProve, 10*time.Second, 11*time.Second)
	ready := s.testContract(t, "ready", stReady, 20*time.Second, 21*time.Second)
	sending := s.testContract(t, "sending", stSending, 10*time.Second, 11*time.Second)
	answered := s.testContract(t, "answered", stAnswered, 5*time.Second, 6*time.Second)
	later := s.testContract(t, "later", stAnswered, 299*time.Second, 300*time.Second)

	s.expire(t0.Add(10 * time.Second))
	if !missed.dropped || s.fileExists(missed) {
		t.Fatal("deadline passed before proving: got kept, want dropped")
	}
	if sending.dropped || sending.state != stSending || sending.heapIdx != -1 {
		t.Fatal("deadline passed during the answer call: got dropped or rescheduled, want left to the report")
	}
	if answered.state != stFetchQ || !s.fetchAt.Equal(answered.after.Add(time.Second)) {
		t.Fatalf("due time passed: got state %d fetchAt %v, want queued and sent a window after", answered.state, s.fetchAt.Sub(t0))
	}
	if ready.state != stReady || later.state != stAnswered {
		t.Fatal("got future timers fired, want them waiting")
	}
	// Deadlines are strict: at exactly the deadline the answer is late.
	s.expire(t0.Add(20 * time.Second))
	if !ready.dropped {
		t.Fatal("ready at its deadline: got kept, want dropped")
	}
	if len(s.timers) != 1 || s.timers[0] != later {
		t.Fatalf("got %d timers, want only the later contract", len(s.timers))
	}
}

func TestAnswerFailureDropsWhatRetryCannotSave(t *testing.T) {
	s := testSession(t)
	soon := s.testContract(t, "soon", stSending, 5*time.Second, 6*time.Second)
	far := s.testContract(t, "far", stSending, 60*time.Second, 61*time.Second)
	s.answer.busy = true
	err := &APIError{Status: http.StatusServiceUnavailable, Message: "busy", RetryAfter: 10 * time.Second}
	if got := s.handleAnswered(&answeredEvent{batch: []*contract{soon, far}, err: err}, t0); got != nil {
		t.Fatalf("got %v, want nil", got)
	}
	if s.answer.busy || !s.answer.notBefore.Equal(t0.Add(10*time.Second)) || s.answer.attempt != 1 {
		t.Fatalf("got busy=%v notBefore=%v attempt=%d, want a retry after 10s", s.answer.busy, s.answer.notBefore.Sub(t0), s.answer.attempt)
	}
	if !soon.dropped {
		t.Fatal("deadline before the retry: got kept, want dropped")
	}
	if far.dropped || far.state != stReady || len(s.ready) != 1 || !s.readyAt.Equal(t0) {
		t.Fatal("deadline after the retry: got not queued, want ready to resend")
	}

	lost := &APIError{Status: http.StatusBadRequest, Message: sluice.MsgNonexistentToken}
	far.state = stSending
	if got := s.handleAnswered(&answeredEvent{batch: []*contract{far}, err: lost}, t0); !errors.Is(got, errTokenLost) {
		t.Fatalf("got %v, want errTokenLost", got)
	}
}

func TestAnswerReportLeavingOutAProof(t *testing.T) {
	s := testSession(t)
	a := s.testContract(t, "a", stSending, 60*time.Second, 61*time.Second)
	b := s.testContract(t, "b", stSending, 60*time.Second, 61*time.Second)
	s.answer.attempt = 3
	report := []ReportItem{{FileHash: a.hash, Status: StatusOK}}
	if err := s.handleAnswered(&answeredEvent{batch: []*contract{a, b}, report: report}, t0); err != nil {
		t.Fatal(err)
	}
	if a.state != stAnswered || b.state != stReady || s.answer.attempt != 0 {
		t.Fatalf("got states %d %d attempt %d, want answered, ready again, 0", a.state, b.state, s.answer.attempt)
	}
}

func TestFetched(t *testing.T) {
	s := testSession(t)
	fresh := s.testContract(t, "fresh", stFetching, 0, 0)
	early := s.testContract(t, "early", stFetching, 0, 0)
	ended := s.testContract(t, "ended", stFetching, 0, 0)
	expired := s.testContract(t, "expired", stFetching, 0, 0)
	missing := s.testContract(t, "missing", stFetching, 0, 0)
	for _, c := range []*contract{fresh, early, ended, expired, missing} {
		s.unschedule(c)
	}
	var seed [32]byte
	seed[1] = 9
	ch := proof.NewChallenge(seed, fresh.tag.Leaves(), 4)
	sent, recv := t0, t0.Add(200*time.Millisecond)
	items := []ChallengeItem{
		{FileHash: fresh.hash, Challenge: ch, Due: 300},
		{FileHash: early.hash, Challenge: early.ch, Due: 2, Answered: true},
		{FileHash: ended.hash, Status: sluice.MsgNoMoreChallenges},
		{FileHash: expired.hash, Error: sluice.MsgContractExpired},
	}
	now := recv
	ev := &fetchedEvent{batch: []*contract{fresh, early, ended, expired, missing}, items: items, sent: sent, recv: recv}
	if err := s.handleFetched(ev, now); err != nil {
		t.Fatal(err)
	}
	if fresh.state != stProve || fresh.gen != 1 || !fresh.deadline.Equal(sent.Add(300*time.Second)) ||
		!fresh.after.Equal(recv.Add(300*time.Second)) || len(s.proveQ) != 1 {
		t.Fatalf("new challenge: got state %d gen %d deadline %v after %v", fresh.state, fresh.gen, fresh.deadline.Sub(t0), fresh.after.Sub(t0))
	}
	if early.state != stAnswered || !early.after.Equal(recv.Add(2*time.Second)) || !early.wake.Equal(early.after) {
		t.Fatalf("asked early: got state %d after %v, want answered until recv+2s", early.state, early.after.Sub(t0))
	}
	if !ended.dropped || !expired.dropped || s.fileExists(ended) || s.fileExists(expired) {
		t.Fatal("ended and expired: got kept, want dropped with their files")
	}
	if missing.state != stFetchQ || !s.fetchAt.Equal(now.Add(minRefetch+time.Second)) {
		t.Fatalf("left out: got state %d fetchAt %v, want queued again", missing.state, s.fetchAt.Sub(t0))
	}
	if s.count.dropped != 2 {
		t.Fatalf("got %d dropped, want 2", s.count.dropped)
	}
}

func TestFetchFailureKeepsContracts(t *testing.T) {
	s := testSession(t)
	c := s.testContract(t, "c", stFetching, 0, 0)
	s.unschedule(c)
	if err := s.handleFetched(&fetchedEvent{batch: []*contract{c}, err: errors.New("connection refused")}, t0); err != nil {
		t.Fatal(err)
	}
	if c.dropped || c.state != stFetchQ || s.fetch.attempt != 1 || !s.fetch.notBefore.After(t0) {
		t.Fatalf("got dropped=%v state=%d attempt=%d, want queued for a retry", c.dropped, c.state, s.fetch.attempt)
	}
}

func TestProved(t *testing.T) {
	s := testSession(t)
	c := s.testContract(t, "proved", stProving, 300*time.Second, 301*time.Second)
	p, tree, err := proveFile(s.path(c.hash), c.tag, c.ch, nil)
	if err != nil {
		t.Fatal(err)
	}

	s.handleProved(&provedEvent{c: c, gen: c.gen + 1, p: p, tree: tree}, t0)
	if c.state != stProving {
		t.Fatal("stale proof: got applied, want ignored")
	}
	s.handleProved(&provedEvent{c: c, gen: c.gen, p: p, tree: tree}, t0)
	if c.state != stReady || c.tree != tree || s.treeBytes != treeBytes(c.tag) {
		t.Fatalf("got state %d, tree cached %v, want ready with the tree cached", c.state, c.tree == tree)
	}
	if !s.readyAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("got send at %v, want one batch window later", s.readyAt.Sub(t0))
	}

	late := s.testContract(t, "late", stProving, time.Second, 2*time.Second)
	s.handleProved(&provedEvent{c: late, gen: late.gen, p: p}, t0.Add(time.Second))
	if !late.dropped {
		t.Fatal("proof at the deadline: got kept, want dropped")
	}
	bad := s.testContract(t, "bad", stProving, time.Minute, time.Minute)
	s.handleProved(&provedEvent{c: bad, gen: bad.gen, err: ErrChunkMismatch}, t0)
	if !bad.dropped || s.fileExists(bad) {
		t.Fatal("proof failed: got kept, want dropped")
	}
	s.drop(c, t0, "test")
	if s.treeBytes != 0 || s.held != 0 || len(s.contracts) != 0 {
		t.Fatalf("got treeBytes %d held %d contracts %d after dropping all, want 0", s.treeBytes, s.held, len(s.contracts))
	}
}

func TestResumeBatch(t *testing.T) {
	s := testSession(t)
	write := func(seed string) ChunkItem {
		item, data := seededItem(t, seed, 3*1024+5)
		if err := os.WriteFile(s.path(item.FileHash), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return item
	}
	live, done, gone, unlisted := write("live"), write("done"), write("gone"), write("unlisted")
	corrupt := write("corrupt")
	if err := os.WriteFile(s.path(corrupt.FileHash), []byte("not the chunk"), 0o600); err != nil {
		t.Fatal(err)
	}
	items := []ChallengeItem{
		{FileHash: live.FileHash, Challenge: live.Challenge, Due: 100},
		{FileHash: done.FileHash, Challenge: done.Challenge, Due: 50, Answered: true},
		{FileHash: gone.FileHash, Error: sluice.MsgContractExpired},
		{FileHash: corrupt.FileHash, Challenge: corrupt.Challenge, Due: 100},
	}
	batch := []sluice.FileHash{live.FileHash, done.FileHash, gone.FileHash, unlisted.FileHash, corrupt.FileHash}
	s.resumeBatch(batch, items, t0, t0.Add(time.Second))

	c := s.contracts[live.FileHash]
	if c == nil || c.state != stProve || c.tag != live.Tag || !c.deadline.Equal(t0.Add(100*time.Second)) {
		t.Fatalf("live contract: got %+v, want resumed with its tag, to prove", c)
	}
	if d := s.contracts[done.FileHash]; d == nil || d.state != stAnswered {
		t.Fatal("answered contract: got not resumed, want waiting for its due time")
	}
	if len(s.contracts) != 2 || s.held != 2*live.Size {
		t.Fatalf("got %d contracts, %d bytes, want 2 and %d", len(s.contracts), s.held, 2*live.Size)
	}
	for _, h := range []sluice.FileHash{gone.FileHash, unlisted.FileHash, corrupt.FileHash} {
		if _, err := os.Stat(s.path(h)); err == nil {
			t.Fatalf("%s: got kept, want removed", h)
		}
	}
}

func TestTimerHeapOrder(t *testing.T) {
	s := testSession(t)
	var cs []*contract
	for i, d := range []int{5, 1, 4, 2, 3} {
		var h sluice.FileHash
		h[0] = byte(i)
		c := &contract{hash: h, heapIdx: -1}
		s.schedule(c, t0.Add(time.Duration(d)*time.Second))
		cs = append(cs, c)
	}
	s.schedule(cs[0], t0) // moved to the front
	s.unschedule(cs[2])   // removed
	var got []time.Duration
	for len(s.timers) > 0 {
		c := s.timers[0]
		s.unschedule(c)
		got = append(got, c.wake.Sub(t0))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestFormatProgress(t *testing.T) {
	deadline := t0.Add(272*time.Second + 40*time.Millisecond)
	got := formatProgress(12, 384<<10, 1<<20, counters{accepted: 40, rejected: 1, dropped: 2}, deadline, t0.Add(time.Second), t0)
	want := "12 contracts, 384.0 KiB / 1.0 MiB held, 40 proofs accepted, 1 rejected, 2 contracts dropped, next deadline in 4m32s"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = formatProgress(1, 3<<30, 5<<30, counters{}, time.Time{}, t0.Add(1500*time.Millisecond), t0)
	if want := "1 contracts, 3.0 GiB / 5.0 GiB held, 0 proofs accepted, 0 rejected, 0 contracts dropped, all answered, next challenge in 1.5s"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := formatProgress(0, 0, 500, counters{}, time.Time{}, time.Time{}, t0); !strings.HasSuffix(got, "0 B / 500 B held, 0 proofs accepted, 0 rejected, 0 contracts dropped, nothing due") {
		t.Fatalf("got %q", got)
	}
}

func TestConfigDefaults(t *testing.T) {
	base := Config{Node: "http://n", Address: "a", Size: 1, Dir: "d"}
	cfg, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BatchWindow != DefaultBatchWindow || cfg.ProgressEvery != DefaultProgressEvery || cfg.TreeCache != DefaultTreeCache ||
		cfg.Log == nil || cfg.HTTPClient == nil {
		t.Fatalf("got %+v, want defaults filled in", cfg)
	}
	neg := base
	neg.BatchWindow = -1
	if cfg, _ := neg.withDefaults(); cfg.BatchWindow != 0 {
		t.Fatalf("negative window: got %v, want 0 (send at once)", cfg.BatchWindow)
	}
	for name, bad := range map[string]Config{
		"no node":         {Address: "a", Size: 1, Dir: "d"},
		"bad node":        {Node: "n", Address: "a", Size: 1, Dir: "d"},
		"no address":      {Node: "http://n", Size: 1, Dir: "d"},
		"no size":         {Node: "http://n", Address: "a", Dir: "d"},
		"no dir":          {Node: "http://n", Address: "a", Size: 1},
		"message alone":   {Node: "http://n", Address: "a", Size: 1, Dir: "d", Message: "m"},
		"signature alone": {Node: "http://n", Address: "a", Size: 1, Dir: "d", Signature: "s"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: got nil, want an error", name)
		}
	}
}

// TestFetchWaitsAQuarterOfShortIntervals: a contract on a node whose
// challenges come every second does not wait the whole default batch
// window (a second) before fetching its next challenge, which would leave
// no time to answer it; contracts with long intervals wait the window.
func TestFetchWaitsAQuarterOfShortIntervals(t *testing.T) {
	s := testSession(t)
	if s.cfg.BatchWindow != time.Second {
		t.Fatalf("default batch window %v, want 1s", s.cfg.BatchWindow)
	}
	short := s.testContract(t, "short", stFetching, 0, 0)
	short.interval = time.Second
	s.unschedule(short)
	s.toFetch(short, t0)
	if !s.fetchAt.Equal(t0.Add(250 * time.Millisecond)) {
		t.Fatalf("1s interval: fetch at %v, want t0+250ms", s.fetchAt.Sub(t0))
	}

	s2 := testSession(t)
	long := s2.testContract(t, "long", stFetching, 0, 0)
	long.interval = 5 * time.Minute
	s2.unschedule(long)
	s2.toFetch(long, t0)
	if !s2.fetchAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("5m interval: fetch at %v, want t0+1s (the window)", s2.fetchAt.Sub(t0))
	}

	// The interval is learned: a new challenge due further away than the
	// last one raises it.
	c := s.testContract(t, "learn", stFetching, 0, 0)
	s.unschedule(c)
	c.interval = time.Second
	ch := proof.NewChallenge([32]byte{3}, c.tag.Leaves(), 4)
	ev := &fetchedEvent{batch: []*contract{c}, items: []ChallengeItem{{FileHash: c.hash, Challenge: ch, Due: 2}}, sent: t0, recv: t0}
	if err := s.handleFetched(ev, t0); err != nil {
		t.Fatal(err)
	}
	if c.interval != 2*time.Second {
		t.Fatalf("learned interval %v, want 2s", c.interval)
	}
}

// A size refusal is told from other refusals, and the limit its message
// states is read.
func TestSizeRefusal(t *testing.T) {
	limit := &APIError{Status: 400, Message: "Invalid size: want a whole number of bytes from 1 to 307200."}
	if !sizeRefused(limit) || statedLimit(limit) != 307200 {
		t.Fatalf("node's size refusal: refused %v, limit %d; want true, 307200", sizeRefused(limit), statedLimit(limit))
	}
	bare := &APIError{Status: 413, Message: "Request body too large."}
	if !sizeRefused(bare) || statedLimit(bare) != 0 {
		t.Fatalf("413: refused %v, limit %d; want true, 0", sizeRefused(bare), statedLimit(bare))
	}
	for _, err := range []error{
		&APIError{Status: 400, Message: "Invalid token."},
		&APIError{Status: 503, Message: "size unavailable"},
		errors.New("connection reset"),
	} {
		if sizeRefused(err) {
			t.Errorf("%v taken for a size refusal", err)
		}
	}
}
