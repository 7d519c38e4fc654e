package farmer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/ctxio"
	"github.com/sluicehq/sluice/proof"
)

// Pacing of the loop.
const (
	fillPace    = 3 * time.Second        // between /chunk calls while the node has chunks
	fillRecheck = 30 * time.Second       // when full, when the node is dry, after a refusal
	minFillAsk  = 32 << 10               // least a /chunk call asks for after size refusals
	minRefetch  = 250 * time.Millisecond // least wait before asking again for a challenge
	maxAnswers  = 256                    // proofs per /answer call (about 8 KB each)
	maxHashes   = 1000                   // hashes per /challenge call
	proveBatch  = 32                     // proofs per prove job, earliest deadline first
	eventBuffer = 64
)

// cstate is where a contract is in the farmer's cycle. Each contract is
// in exactly one queue or call at a time, and in the timer heap while it
// waits for a deadline (cstate stProve to stSending) or for its due time
// to pass (stAnswered).
type cstate uint8

const (
	stProve    cstate = iota // in proveQ
	stProving                // in a prove job
	stReady                  // proof ready, in the answer batch
	stSending                // in an /answer call
	stAnswered               // answered; the timer fires at the due time
	stFetchQ                 // due time passed, in the challenge batch
	stFetching               // in a /challenge call
)

// contract is the farmer's side of one contract. It is owned by the loop
// goroutine; jobs get copies of what they need.
type contract struct {
	hash sluice.FileHash
	tag  proof.Tag
	seed string // Memory mode: a prototype chunk kept as its seed, no file
	ch   proof.Challenge
	gen  uint32 // bumped with every new challenge, to discard stale proofs

	// deadline: the current challenge must be answered strictly before it.
	// It counts from when the request that brought the challenge was sent,
	// so it is never later than the node's due time.
	deadline time.Time
	// after: the node's due time, counted from when its answer arrived, so
	// never earlier than the node's: the next challenge is available then.
	after   time.Time
	readyAt time.Time
	// interval: the longest time from a challenge's fetch to its deadline
	// seen so far, at most the node's challenge interval. A challenge
	// fetch waits for a batch no more than a quarter of it, so a node with
	// short intervals is answered in time whatever the batch window.
	interval time.Duration
	proof    proof.Proof // ready proof, kept until the node accepts it
	tree     *proof.Tree // cached, within Config.TreeCache
	retried  bool        // a proof for the current challenge was rejected once

	state   cstate
	dropped bool
	wake    time.Time
	heapIdx int // position in the timer heap, -1 when not in it
}

// lane is one kind of background job: at most one runs at a time, and
// failures back off.
type lane struct {
	busy      bool
	attempt   int
	notBefore time.Time
}

// Events sent by jobs to the loop.
type (
	chunkEvent struct {
		item            ChunkItem
		seed            string // Memory mode
		deadline, after time.Time
		err             error
	}
	fillDone struct {
		asked int64
		got   int
		err   error
	}
	provedEvent struct {
		c    *contract
		gen  uint32
		p    proof.Proof
		tree *proof.Tree
		err  error
	}
	proveDone     struct{}
	answeredEvent struct {
		batch  []*contract
		report []ReportItem
		err    error
	}
	fetchedEvent struct {
		batch      []*contract
		items      []ChallengeItem
		sent, recv time.Time
		err        error
	}
)

// Counters shown in the progress line.
type counters struct {
	accepted, rejected, dropped, refused int64
}

// session is one token's run: the loop, its state and its jobs.
type session struct {
	cfg      Config
	log      *zap.Logger
	client   *Client
	token    string
	farmerID string
	fresh    bool // the token is new: chunks on disk belong to an old one
	params   proof.Params
	chunkDir string

	contracts map[sluice.FileHash]*contract
	held      int64
	timers    timerHeap
	proveQ    []*contract
	ready     []*contract
	readyAt   time.Time // when the ready batch must be sent
	fetchQ    []*contract
	fetchAt   time.Time // when the challenge batch must be sent
	treeBytes int64

	fill, prover, answer, fetch lane
	nextFill                    time.Time
	// fillCap is the most one /chunk call asks for (0: no cap): the node
	// refuses sizes above its own limit with 400, and a farmer larger than
	// that fills in several calls instead.
	fillCap      int64
	nextProgress time.Time
	count        counters

	ctx    context.Context // cancelled when the session ends
	events chan any
	wg     sync.WaitGroup
}

func newSession(cfg Config, client *Client, token string, params proof.Params, chunkDir string) *session {
	return &session{
		cfg:       cfg,
		log:       cfg.Log,
		client:    client,
		token:     token,
		params:    params,
		chunkDir:  chunkDir,
		contracts: make(map[sluice.FileHash]*contract),
		events:    make(chan any, eventBuffer),
		ctx:       context.Background(),
	}
}

func (s *session) path(h sluice.FileHash) string { return filepath.Join(s.chunkDir, h.String()) }

// run resumes the contracts found on disk and runs the loop until ctx ends
// (nil) or the token is lost (errTokenLost, after removing the chunks).
func (s *session) run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	s.ctx = ctx
	stop := func() { cancel(); s.wg.Wait() }
	defer stop()
	err := s.resume(ctx)
	if err == nil {
		err = s.loop(ctx)
	}
	if errors.Is(err, errTokenLost) {
		stop()
		for _, c := range s.contracts {
			s.drop(c, time.Now(), "token lost")
		}
	}
	return err
}

// loop is the farmer's only decision maker: it wakes on a job's event or
// at the earliest time something is due, does what is due, and sleeps.
func (s *session) loop(ctx context.Context) error {
	now := time.Now()
	s.nextFill = now
	s.nextProgress = now.Add(s.cfg.ProgressEvery)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now = time.Now()
		s.step(now)
		timer.Reset(max(s.nextWake(now).Sub(now), 0))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case ev := <-s.events:
			if err := s.handle(ev, time.Now()); err != nil {
				return err
			}
		}
	}
}

// step does everything due at now: deadlines and due times, progress,
// and starting the jobs whose time has come.
func (s *session) step(now time.Time) {
	s.expire(now)
	if s.cfg.Progress != nil && !now.Before(s.nextProgress) {
		fmt.Fprintln(s.cfg.Progress, s.progress(now))
		s.nextProgress = now.Add(s.cfg.ProgressEvery)
	}
	if !s.prover.busy && len(s.proveQ) > 0 {
		s.dispatchProve()
	}
	if !s.answer.busy && len(s.ready) > 0 && !now.Before(s.readyAt) && !now.Before(s.answer.notBefore) {
		s.dispatchAnswer(now)
	}
	if !s.fetch.busy && len(s.fetchQ) > 0 && !now.Before(s.fetchAt) && !now.Before(s.fetch.notBefore) {
		s.dispatchFetch(now)
	}
	if !s.fill.busy && !now.Before(s.nextFill) {
		s.dispatchFill(now)
	}
}

// nextWake returns when step next has something to do, if no event comes
// first. A running job always ends with an event.
func (s *session) nextWake(now time.Time) time.Time {
	next := now.Add(time.Hour)
	consider := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if s.cfg.Progress != nil {
		consider(s.nextProgress)
	}
	if len(s.timers) > 0 {
		consider(s.timers[0].wake)
	}
	if !s.answer.busy && len(s.ready) > 0 {
		consider(later(s.readyAt, s.answer.notBefore))
	}
	if !s.fetch.busy && len(s.fetchQ) > 0 {
		consider(later(s.fetchAt, s.fetch.notBefore))
	}
	if !s.fill.busy {
		consider(s.nextFill)
	}
	return next
}

// handle applies a job's result.
func (s *session) handle(ev any, now time.Time) error {
	switch ev := ev.(type) {
	case *chunkEvent:
		s.handleChunk(ev, now)
	case *fillDone:
		return s.handleFillDone(ev, now)
	case *provedEvent:
		s.handleProved(ev, now)
	case proveDone:
		s.prover.busy = false
	case *answeredEvent:
		return s.handleAnswered(ev, now)
	case *fetchedEvent:
		return s.handleFetched(ev, now)
	}
	return nil
}

// spawn runs a job on its own goroutine, bounded by the session.
func (s *session) spawn(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// emit sends a job's event to the loop, unless the session ended.
func (s *session) emit(ev any) {
	select {
	case s.events <- ev:
	case <-s.ctx.Done():
	}
}

// ---- State transitions (loop goroutine only).

func (s *session) toProve(c *contract) {
	c.state = stProve
	s.schedule(c, c.deadline)
	s.proveQ = append(s.proveQ, c)
}

// toReady queues a proven contract for the answer batch, to be sent no
// later than sendAt.
func (s *session) toReady(c *contract, now, sendAt time.Time) {
	c.state = stReady
	c.readyAt = now
	s.schedule(c, c.deadline)
	if len(s.ready) == 0 || sendAt.Before(s.readyAt) {
		s.readyAt = sendAt
	}
	s.ready = append(s.ready, c)
}

func (s *session) toAnswered(c *contract) {
	c.state = stAnswered
	c.proof = proof.Proof{}
	s.schedule(c, c.after)
}

// toFetch queues a contract for the challenge batch; the batch is
// gathered for BatchWindow after at.
func (s *session) toFetch(c *contract, at time.Time) {
	c.state = stFetchQ
	s.unschedule(c)
	wait := s.cfg.BatchWindow
	if c.interval > 0 {
		wait = min(wait, c.interval/4)
	}
	t := at.Add(wait)
	if len(s.fetchQ) == 0 || t.Before(s.fetchAt) {
		s.fetchAt = t
	}
	s.fetchQ = append(s.fetchQ, c)
}

// drop forgets a contract and deletes its chunk. Jobs holding it see
// c.dropped and their results are ignored.
func (s *session) drop(c *contract, now time.Time, reason string) {
	if c.dropped {
		return
	}
	c.dropped = true
	delete(s.contracts, c.hash)
	s.held -= c.tag.Size
	s.unschedule(c)
	s.dropTree(c)
	c.proof = proof.Proof{}
	s.count.dropped++
	if c.seed == "" {
		if err := os.Remove(s.path(c.hash)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("chunk.remove", zap.Stringer("file_hash", c.hash), zap.Error(err))
		}
	}
	s.log.Info(evContractDropped, zap.Stringer("file_hash", c.hash), zap.String("reason", reason))
	if t := now.Add(fillPace); t.Before(s.nextFill) {
		s.nextFill = t // room for a new contract
	}
}

// expire handles the timers that fired by now: a deadline passed without
// an answer on its way drops the contract (the node has expired it); a due
// time passed after an answer queues the fetch of the next challenge.
// Contracts in a job are left to the job's result.
func (s *session) expire(now time.Time) {
	for len(s.timers) > 0 && !s.timers[0].wake.After(now) {
		c := s.timers[0]
		s.unschedule(c)
		switch c.state {
		case stProve, stReady:
			s.drop(c, now, "missed the deadline")
		case stAnswered:
			s.toFetch(c, c.after)
		}
	}
}

func (s *session) cacheTree(c *contract, t *proof.Tree) {
	if n := treeBytes(c.tag); s.cfg.TreeCache > 0 && s.treeBytes+n <= s.cfg.TreeCache {
		c.tree = t
		s.treeBytes += n
	}
}

func (s *session) dropTree(c *contract) {
	if c.tree != nil {
		s.treeBytes -= treeBytes(c.tag)
		c.tree = nil
	}
}

// ---- Filling.

func (s *session) dispatchFill(now time.Time) {
	want := s.cfg.Size - s.held
	if want <= 0 {
		s.nextFill = now.Add(fillRecheck)
		return
	}
	if s.fillCap > 0 {
		want = min(want, s.fillCap)
	}
	s.fill.busy = true
	s.spawn(func(ctx context.Context) { s.runFill(ctx, want) })
}

// runFill asks for contracts worth want bytes and obtains each chunk in
// turn, sending one event per chunk so the loop can start proving early.
func (s *session) runFill(ctx context.Context, want int64) {
	sent := time.Now()
	items, err := s.client.Chunks(ctx, s.token, want)
	recv := time.Now()
	if err != nil {
		s.emit(&fillDone{asked: want, err: err})
		return
	}
	got, total := 0, int64(0)
	for _, it := range items {
		if ctx.Err() != nil {
			return
		}
		if it.Size > want-total {
			s.log.Warn(evNodeOverfilled, zap.Stringer("file_hash", it.FileHash), zap.Int64("size", it.Size),
				zap.Int64("asked", want))
			continue
		}
		total += max(it.Size, 0)
		ev := s.obtain(ctx, it, sent, recv)
		if ev.err == nil {
			got++
		}
		s.emit(ev)
	}
	s.emit(&fillDone{asked: want, got: got})
}

// obtain gets a chunk's bytes into place and checks them. It must finish
// in time to prove before the first deadline, so it gets three quarters of
// the time to it.
func (s *session) obtain(ctx context.Context, it ChunkItem, sent, recv time.Time) *chunkEvent {
	due := Seconds(it.Due)
	ev := &chunkEvent{item: it, deadline: sent.Add(due), after: recv.Add(due)}
	if ev.err = CheckItem(it); ev.err != nil {
		return ev
	}
	ctx, cancel := context.WithDeadline(ctx, sent.Add(due-due/4))
	defer cancel()
	if it.Seed != "" {
		r := ctxio.Reader(ctx, proof.NewSeeded(it.Seed, it.Size).NewReader())
		if s.cfg.Memory {
			ev.seed = it.Seed
			ev.err = VerifyChunk(r, it)
		} else {
			ev.err = WriteChunk(s.path(it.FileHash), r, it)
		}
		return ev
	}
	body, err := s.client.Download(ctx, it.URL)
	if err != nil {
		ev.err = err
		return ev
	}
	defer body.Close()
	ev.err = WriteChunk(s.path(it.FileHash), ctxio.Reader(ctx, body), it)
	return ev
}

func (s *session) handleChunk(ev *chunkEvent, now time.Time) {
	it := ev.item
	if ev.err != nil {
		s.count.refused++
		s.log.Warn(evChunkRefused, zap.Stringer("file_hash", it.FileHash), zap.Error(ev.err))
		return
	}
	if _, dup := s.contracts[it.FileHash]; dup {
		s.log.Warn(evChunkRefused, zap.Stringer("file_hash", it.FileHash), zap.String("reason", "already held"))
		return
	}
	c := &contract{
		hash: it.FileHash, tag: it.Tag, seed: ev.seed, ch: it.Challenge,
		deadline: ev.deadline, after: ev.after, heapIdx: -1,
		interval: Seconds(it.Due), // a new contract's first challenge is due one interval after it starts
	}
	s.contracts[c.hash] = c
	s.held += c.tag.Size
	s.log.Debug(evContractAdded, zap.Stringer("file_hash", c.hash), zap.Int64("size", c.tag.Size),
		zap.Duration("due_in", ev.deadline.Sub(now)))
	s.toProve(c)
}

func (s *session) handleFillDone(ev *fillDone, now time.Time) error {
	s.fill.busy = false
	if ev.err != nil {
		if IsNonexistentToken(ev.err) {
			return errTokenLost
		}
		if sizeRefused(ev.err) && ev.asked > minFillAsk {
			// Over the node's limit for one call: ask for the limit its
			// message states, or else half as much, at once. A refusal
			// that is not about the size stays refused at minFillAsk and
			// is then retried as any refusal.
			s.fillCap = max(ev.asked/2, minFillAsk)
			if n := statedLimit(ev.err); n >= minFillAsk && n < ev.asked {
				s.fillCap = n
			}
			s.log.Info(evFillSmaller, zap.Int64("refused", ev.asked), zap.Int64("asking", s.fillCap), zap.Error(ev.err))
			s.nextFill = now
			return nil
		}
		d := RetryDelay(ev.err, s.fill.attempt, rand.Float64())
		s.fill.attempt++
		if Retryable(ev.err) {
			s.log.Warn(evFillFailed, zap.Error(ev.err), zap.Duration("retry_in", d))
		} else {
			d = max(d, fillRecheck)
			s.log.Error(evFillFailed, zap.Error(ev.err), zap.Duration("retry_in", d))
		}
		s.nextFill = now.Add(d)
		return nil
	}
	s.fill.attempt = 0
	if ev.got > 0 && s.held < s.cfg.Size {
		s.nextFill = now.Add(fillPace)
	} else {
		s.nextFill = now.Add(fillRecheck)
	}
	return nil
}

// sizeRefused tells whether the node refused a /chunk call's size: a 400
// whose message says so (the node's "Invalid size: ..."), or 413.
func sizeRefused(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusRequestEntityTooLarge ||
		(e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.Message), "size"))
}

// statedLimit is the largest size a size refusal says the node takes (its
// message ends "from 1 to N."), or 0.
func statedLimit(err error) int64 {
	var e *APIError
	if !errors.As(err, &e) {
		return 0
	}
	m := statedLimitRE.FindStringSubmatch(e.Message)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

var statedLimitRE = regexp.MustCompile(`from 1 to (\d+)`)

// ---- Proving.

// proveJob is what a prove job needs of a contract, copied so that the
// job never touches loop state.
type proveJob struct {
	c    *contract
	gen  uint32
	path string
	seed string
	tag  proof.Tag
	ch   proof.Challenge
	tree *proof.Tree
}

func (j *proveJob) run() (proof.Proof, *proof.Tree, error) {
	if j.seed != "" {
		return prove(proof.NewSeeded(j.seed, j.tag.Size), j.tag, j.ch, j.tree)
	}
	return proveFile(j.path, j.tag, j.ch, j.tree)
}

// dispatchProve starts a job proving the queued contracts with the
// earliest deadlines.
func (s *session) dispatchProve() {
	q := slices.DeleteFunc(s.proveQ, func(c *contract) bool { return c.dropped || c.state != stProve })
	if len(q) == 0 {
		s.proveQ = q
		return
	}
	slices.SortFunc(q, func(a, b *contract) int { return a.deadline.Compare(b.deadline) })
	n := min(len(q), proveBatch)
	jobs := make([]proveJob, n)
	for i, c := range q[:n] {
		c.state = stProving
		jobs[i] = proveJob{c: c, gen: c.gen, seed: c.seed, tag: c.tag, ch: c.ch, tree: c.tree}
		if c.seed == "" {
			jobs[i].path = s.path(c.hash)
		}
	}
	s.proveQ = shift(q, n)
	s.prover.busy = true
	s.spawn(func(ctx context.Context) {
		for i := range jobs {
			if ctx.Err() != nil {
				return
			}
			p, tree, err := jobs[i].run()
			s.emit(&provedEvent{c: jobs[i].c, gen: jobs[i].gen, p: p, tree: tree, err: err})
		}
		s.emit(proveDone{})
	})
}

func (s *session) handleProved(ev *provedEvent, now time.Time) {
	c := ev.c
	if c.dropped || c.gen != ev.gen || c.state != stProving {
		return
	}
	if ev.err != nil {
		s.log.Error(evProofFailed, zap.Stringer("file_hash", c.hash), zap.Error(ev.err))
		s.drop(c, now, "cannot prove")
		return
	}
	if !now.Before(c.deadline) {
		s.drop(c, now, "proof ready after the deadline")
		return
	}
	if c.tree == nil && ev.tree != nil {
		s.cacheTree(c, ev.tree)
	}
	c.proof = ev.p
	s.toReady(c, now, LatestSend(now, c.deadline, s.cfg.BatchWindow))
}

// ---- Answering.

// dispatchAnswer sends the ready proofs, earliest deadlines first, at
// most maxAnswers per call; the rest go in the next call.
func (s *session) dispatchAnswer(now time.Time) {
	q := slices.DeleteFunc(s.ready, func(c *contract) bool { return c.dropped || c.state != stReady })
	if len(q) == 0 {
		s.ready = q
		return
	}
	if len(q) > maxAnswers {
		slices.SortFunc(q, func(a, b *contract) int { return a.deadline.Compare(b.deadline) })
	}
	n := min(len(q), maxAnswers)
	batch := slices.Clone(q[:n])
	s.ready = shift(q, n)
	for i, c := range s.ready {
		if t := LatestSend(c.readyAt, c.deadline, s.cfg.BatchWindow); i == 0 || t.Before(s.readyAt) {
			s.readyAt = t
		}
	}
	items := make([]ProofItem, n)
	latest := batch[0].deadline
	for i, c := range batch {
		c.state = stSending
		items[i] = ProofItem{FileHash: c.hash, Proof: c.proof}
		latest = later(latest, c.deadline)
	}
	s.answer.busy = true
	s.spawn(func(ctx context.Context) {
		// Past the latest deadline no answer in the batch can count.
		ctx, cancel := context.WithDeadline(ctx, latest)
		report, err := s.client.Answers(ctx, s.token, items)
		cancel()
		s.emit(&answeredEvent{batch: batch, report: report, err: err})
	})
}

func (s *session) handleAnswered(ev *answeredEvent, now time.Time) error {
	s.answer.busy = false
	if ev.err != nil {
		if IsNonexistentToken(ev.err) {
			return errTokenLost
		}
		d := RetryDelay(ev.err, s.answer.attempt, rand.Float64())
		s.answer.attempt++
		s.answer.notBefore = now.Add(d)
		s.log.Warn(evAnswerFailed, zap.Int("proofs", len(ev.batch)), zap.Error(ev.err), zap.Duration("retry_in", d))
		for _, c := range ev.batch {
			if c.dropped || c.state != stSending {
				continue
			}
			if !s.answer.notBefore.Before(c.deadline) {
				s.drop(c, now, "answer retry would miss the deadline")
			} else {
				s.toReady(c, now, now)
			}
		}
		return nil
	}
	s.answer.attempt = 0
	for _, r := range ev.report {
		if c := s.contracts[r.FileHash]; c != nil && c.state == stSending {
			s.judge(c, r, now)
		}
	}
	for _, c := range ev.batch {
		if c.dropped || c.state != stSending {
			continue
		}
		// The report left it out: send it again.
		if now.Before(c.deadline) {
			s.log.Warn(evAnswerFailed, zap.Stringer("file_hash", c.hash), zap.String("reason", "missing from the report"))
			s.toReady(c, now, now.Add(minRefetch))
		} else {
			s.drop(c, now, "missed the deadline")
		}
	}
	return nil
}

// judge applies the node's verdict on one answer.
func (s *session) judge(c *contract, r ReportItem, now time.Time) {
	switch {
	case r.Error == "" && r.Status == StatusOK:
		s.count.accepted++
		s.toAnswered(c)
	case r.Error == sluice.MsgAlreadyAnswered:
		s.toAnswered(c)
	case r.Error == sluice.MsgProofInvalid || r.Error == sluice.MsgProofCorrupted:
		s.count.rejected++
		s.log.Error(evProofRejected, zap.Stringer("file_hash", c.hash), zap.String("reason", r.Error),
			zap.Bool("retried", c.retried))
		s.dropTree(c) // prove again from the file, which re-checks it against the tag
		c.proof = proof.Proof{}
		if !c.retried && now.Before(c.deadline) {
			c.retried = true
			s.toProve(c)
		} else {
			s.drop(c, now, r.Error)
		}
	case r.Error != "":
		s.drop(c, now, r.Error)
	case r.Status != "":
		s.drop(c, now, r.Status)
	}
}

// ---- Fetching the next challenges.

func (s *session) dispatchFetch(now time.Time) {
	q := slices.DeleteFunc(s.fetchQ, func(c *contract) bool { return c.dropped || c.state != stFetchQ })
	if len(q) == 0 {
		s.fetchQ = q
		return
	}
	n := min(len(q), maxHashes)
	batch := slices.Clone(q[:n])
	s.fetchQ = shift(q, n)
	s.fetchAt = now // the rest is due already
	hashes := make([]sluice.FileHash, n)
	for i, c := range batch {
		c.state = stFetching
		hashes[i] = c.hash
	}
	s.fetch.busy = true
	s.spawn(func(ctx context.Context) {
		sent := time.Now()
		items, err := s.client.Challenges(ctx, s.token, hashes)
		s.emit(&fetchedEvent{batch: batch, items: items, sent: sent, recv: time.Now(), err: err})
	})
}

func (s *session) handleFetched(ev *fetchedEvent, now time.Time) error {
	s.fetch.busy = false
	if ev.err != nil {
		if IsNonexistentToken(ev.err) {
			return errTokenLost
		}
		// No deadline is at stake yet: the node answers for the contracts
		// (expired or not) once it is reachable again.
		d := RetryDelay(ev.err, s.fetch.attempt, rand.Float64())
		s.fetch.attempt++
		s.fetch.notBefore = now.Add(d)
		s.log.Warn(evChallengeFailed, zap.Int("contracts", len(ev.batch)), zap.Error(ev.err), zap.Duration("retry_in", d))
		for _, c := range ev.batch {
			if !c.dropped && c.state == stFetching {
				s.toFetch(c, now)
			}
		}
		return nil
	}
	s.fetch.attempt = 0
	for _, it := range ev.items {
		if c := s.contracts[it.FileHash]; c != nil && c.state == stFetching {
			s.next(c, it, ev.sent, ev.recv, now)
		}
	}
	for _, c := range ev.batch {
		if !c.dropped && c.state == stFetching { // left out of the answer
			s.toFetch(c, now.Add(minRefetch))
		}
	}
	return nil
}

// next applies a /challenge item to a contract waiting for it.
func (s *session) next(c *contract, it ChallengeItem, sent, recv, now time.Time) {
	due := Seconds(it.Due)
	switch {
	case it.Error != "":
		s.drop(c, now, it.Error)
	case it.Status != "":
		s.drop(c, now, it.Status)
	case it.Answered: // asked before the node's due time: come back then
		c.after = later(recv.Add(due), now.Add(minRefetch))
		s.toAnswered(c)
	case len(it.Challenge.Indices) == 0:
		s.drop(c, now, "challenge without indices")
	default:
		c.gen++
		c.ch = it.Challenge
		c.interval = max(c.interval, due)
		c.deadline = sent.Add(due)
		c.after = recv.Add(due)
		c.retried = false
		s.toProve(c)
	}
}

// ---- Resuming after a restart.

// resume takes back the contracts whose chunks are on disk: with a new
// token they are all stale and removed; with a reused one the node is asked
// for their current challenges, and the ones it no longer lists are
// removed.
func (s *session) resume(ctx context.Context) error {
	entries, err := os.ReadDir(s.chunkDir)
	if err != nil {
		return fmt.Errorf("farmer: %w", err)
	}
	var hashes []sluice.FileHash
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(s.chunkDir, name)) // a write cut short
			continue
		}
		if h, err := sluice.ParseFileHash(name); err == nil {
			hashes = append(hashes, h)
		}
	}
	if len(hashes) == 0 {
		return nil
	}
	if s.fresh {
		for _, h := range hashes {
			_ = os.Remove(s.path(h))
		}
		s.log.Info("chunks.removed", zap.Int("chunks", len(hashes)), zap.String("reason", "new token"))
		return nil
	}
	for start := 0; start < len(hashes); start += maxHashes {
		batch := hashes[start:min(start+maxHashes, len(hashes))]
		var items []ChallengeItem
		var sent, recv time.Time
		err := retry(ctx, s.log, "POST /challenge", func(ctx context.Context) (err error) {
			sent = time.Now()
			items, err = s.client.Challenges(ctx, s.token, batch)
			recv = time.Now()
			return err
		})
		switch {
		case IsNonexistentToken(err):
			return errTokenLost
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// Farm without them; the files stay for the next start.
			s.log.Error(evChallengeFailed, zap.String("phase", "resume"), zap.Error(err))
			continue
		}
		s.resumeBatch(batch, items, sent, recv)
	}
	return nil
}

func (s *session) resumeBatch(batch []sluice.FileHash, items []ChallengeItem, sent, recv time.Time) {
	pending := make(map[sluice.FileHash]bool, len(batch))
	for _, h := range batch {
		pending[h] = true
	}
	for _, it := range items {
		h := it.FileHash
		if !pending[h] {
			continue
		}
		pending[h] = false
		if it.Error != "" || it.Status != "" || (!it.Answered && len(it.Challenge.Indices) == 0) {
			_ = os.Remove(s.path(h))
			continue
		}
		tag, err := TagFile(s.path(h), h, s.params.LeafSize)
		if err != nil {
			s.log.Warn(evChunkRefused, zap.Stringer("file_hash", h), zap.Error(err))
			_ = os.Remove(s.path(h))
			continue
		}
		due := Seconds(it.Due)
		c := &contract{hash: h, tag: tag, after: recv.Add(due), heapIdx: -1, interval: due}
		s.contracts[h] = c
		s.held += tag.Size
		if it.Answered {
			c.after = later(c.after, time.Now().Add(minRefetch))
			s.toAnswered(c)
		} else {
			c.ch = it.Challenge
			c.deadline = sent.Add(due)
			s.toProve(c)
		}
		s.log.Info(evContractResumed, zap.Stringer("file_hash", h), zap.Bool("answered", it.Answered))
	}
	for h, left := range pending {
		if left {
			_ = os.Remove(s.path(h))
		}
	}
}

// ---- Progress.

// progress returns the progress line at now.
func (s *session) progress(now time.Time) string {
	var deadline, due time.Time
	for _, c := range s.contracts {
		switch {
		case c.state <= stSending:
			if deadline.IsZero() || c.deadline.Before(deadline) {
				deadline = c.deadline
			}
		case c.state == stAnswered:
			if due.IsZero() || c.after.Before(due) {
				due = c.after
			}
		}
	}
	return formatProgress(len(s.contracts), s.held, s.cfg.Size, s.count, deadline, due, now)
}

// formatProgress renders the progress line. deadline is the earliest
// deadline of an unanswered challenge and due the earliest time a next
// challenge becomes available (zero: none).
func formatProgress(contracts int, held, size int64, n counters, deadline, due, now time.Time) string {
	in := func(t time.Time) string { return max(t.Sub(now), 0).Round(100 * time.Millisecond).String() }
	next := "nothing due"
	switch {
	case !deadline.IsZero():
		next = "next deadline in " + in(deadline)
	case !due.IsZero():
		next = "all answered, next challenge in " + in(due)
	}
	return fmt.Sprintf("%d contracts, %s / %s held, %d proofs accepted, %d rejected, %d contracts dropped, %s",
		contracts, formatBytes(held), formatBytes(size), n.accepted, n.rejected, n.dropped, next)
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ---- Helpers.

// shift drops the first n elements of q in place, clearing the vacated
// tail so the contracts can be collected.
func shift(q []*contract, n int) []*contract {
	m := copy(q, q[n:])
	clear(q[m:])
	return q[:m]
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (s *session) schedule(c *contract, at time.Time) {
	c.wake = at
	if c.heapIdx >= 0 {
		heap.Fix(&s.timers, c.heapIdx)
	} else {
		heap.Push(&s.timers, c)
	}
}

func (s *session) unschedule(c *contract) {
	if c.heapIdx >= 0 {
		heap.Remove(&s.timers, c.heapIdx)
	}
}

// timerHeap orders contracts by wake time; each contract knows its index.
type timerHeap []*contract

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].wake.Before(h[j].wake) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *timerHeap) Push(x any) {
	c := x.(*contract)
	c.heapIdx = len(*h)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	c.heapIdx = -1
	*h = old[:len(old)-1]
	return c
}
