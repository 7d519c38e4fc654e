package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	randv2 "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/farmer"
	"github.com/sluicehq/sluice/proof"
)

// Limits of one farmer's batch calls, as the real farmer uses.
const (
	maxAnswersPerCall = 256
	maxHashesPerCall  = 1000
	maxAnomalies      = 20 // kept per farmer, for the report
	// minRefetch is the least wait before asking again for a challenge.
	minRefetch = 50 * time.Millisecond
)

// cstate is where a virtual contract is in its cycle.
type cstate uint8

const (
	cProve    cstate = iota // an unanswered challenge, no proof yet
	cReady                  // proof made, waiting in the answer batch until sendAt
	cAnswered               // accepted; the next challenge comes at after
	cFetch                  // needs POST /challenge: the next challenge, or a resync
	cDoomed                 // answer rejected: fetched at after to see it expired
)

// vcontract is a virtual farmer's side of one contract. It is owned by
// its farmer's goroutine.
type vcontract struct {
	hash sluice.FileHash
	tag  proof.Tag
	seed string // prototype chunk: bytes regenerate from the seed
	data []byte // uploaded chunk: the bytes, downloaded
	// upload: a piece of an uploaded file.
	upload bool
	lost   []uint64    // lossy: bit i set when leaf i is lost
	tree   *proof.Tree // cached within Scenario.TreeCache
	ch     proof.Challenge

	st cstate
	// deadline: the node's due time of the current challenge is no earlier
	// (counted from when the request that brought it was sent); after: no
	// later (counted from when its answer arrived).
	deadline, after time.Time
	sendAt          time.Time
	pr              proof.Proof
	answered        bool      // the current challenge was accepted
	late            bool      // late kind: this answer goes after the due time
	hit             bool      // lossy kind: the challenge names a lost leaf
	judged          bool      // the node has judged an answer of this contract
	uncertain       bool      // an answer to the current challenge may have been applied unseen
	learnedAt       time.Time // when the current challenge arrived
	doomedAt        time.Time // when an answer was rejected
	// reofferAt: a doomed upload piece goes back to the node's pool at
	// its due time; reoffered once it was counted in the upload demand.
	reofferAt time.Time
	reoffered bool
}

// reader returns the chunk's bytes.
func (c *vcontract) reader() io.ReaderAt {
	if c.data != nil {
		return bytes.NewReader(c.data)
	}
	return proof.NewSeeded(c.seed, c.tag.Size)
}

// lane is one kind of call's retry state.
type lane struct {
	attempt   int
	notBefore time.Time
}

// vfarmer is one virtual farmer: a goroutine running step, sleeping until
// the next thing is due.
type vfarmer struct {
	r      *run
	idx    int
	group  int
	g      FarmerGroup
	rng    *randv2.Rand
	client *farmer.Client
	addr   string
	token  string
	id     string // the node's farmer id for token

	contracts map[sluice.FileHash]*vcontract
	held      int64 // bytes of contracts not doomed

	fill, answer, fetch lane
	nextFill            time.Time
	online              bool
	flipAt              time.Time      // flaky: when it goes off or on
	outages             [][2]time.Time // flaky: from, to (zero while off)

	stats  FarmerStats
	ledger map[string]*farmerLedger // by farmer id (a new token is a new id)
	notes  []string
	stop   <-chan struct{}
	dead   bool // lost its token and could not get another
}

func newFarmer(r *run, idx, group int, g FarmerGroup, hc *http.Client) (*vfarmer, error) {
	var a [20]byte
	if _, err := rand.Read(a[:]); err != nil {
		return nil, err
	}
	if r.sc.ForwardedFor {
		ip := fmt.Sprintf("10.%d.%d.%d", (idx>>16)&255, (idx>>8)&255, idx&255)
		hc = &http.Client{Transport: forwardedFor{base: transportOf(hc), ip: ip}, Timeout: hc.Timeout}
	}
	client, err := farmer.NewClient(r.node, hc)
	if err != nil {
		return nil, err
	}
	client.Timeout = r.sc.RequestTimeout.D()
	return &vfarmer{
		r: r, idx: idx, group: group, g: g,
		rng:       randv2.New(randv2.NewPCG(r.sc.Seed, uint64(idx))),
		client:    client,
		addr:      "0x" + hex.EncodeToString(a[:]),
		contracts: map[sluice.FileHash]*vcontract{},
		ledger:    map[string]*farmerLedger{},
	}, nil
}

// forwardedFor sends a fixed X-Forwarded-For, so that a node trusting the
// simulator as a proxy sees each virtual farmer as its own client.
type forwardedFor struct {
	base http.RoundTripper
	ip   string
}

func (f forwardedFor) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Forwarded-For", f.ip)
	return f.base.RoundTrip(req)
}

func transportOf(hc *http.Client) http.RoundTripper {
	if hc.Transport != nil {
		return hc.Transport
	}
	return http.DefaultTransport
}

// note keeps an anomaly for the report (a few per farmer) and counts it.
func (f *vfarmer) note(format string, args ...any) {
	f.stats.Anomalies++
	if len(f.notes) < maxAnomalies {
		f.notes = append(f.notes, fmt.Sprintf("farmer %d (%s %s): ", f.idx, f.g.Kind, f.id)+fmt.Sprintf(format, args...))
	}
}

// call runs one API call and measures it.
func (f *vfarmer) call(ctx context.Context, route string, fn func(ctx context.Context) error) error {
	start := time.Now()
	err := fn(ctx)
	f.r.m.observe(route, time.Since(start), err)
	return err
}

// retryDelay is the wait before retrying a failed call: the farmer's
// backoff, but never more than a quarter interval, so that a farmer whose
// node comes back always has time to answer before the next due time.
func (f *vfarmer) retryDelay(err error, l *lane) time.Duration {
	d := farmer.RetryDelay(err, l.attempt, f.rng.Float64())
	l.attempt++
	return min(d, max(f.r.intervalOr(time.Second)/4, 20*time.Millisecond))
}

// run is the farmer's goroutine: connect, then step and sleep until stop.
func (f *vfarmer) run(ctx context.Context, stop <-chan struct{}, startAt time.Time) {
	f.stop = stop
	if !sleepUntil(ctx, stop, startAt) || !f.connect(ctx) {
		return
	}
	f.online = true
	f.r.m.online.Add(1)
	now := time.Now()
	f.nextFill = now
	if f.g.Kind == Flaky {
		// A random phase, so that flaky farmers do not all switch together.
		f.flipAt = now.Add(time.Duration(f.rng.Float64() * float64(f.g.On.D())))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		f.step(ctx)
		if f.dead {
			f.finish()
			return
		}
		now := time.Now()
		timer.Reset(max(f.nextWake(now).Sub(now), 0))
		// An honest farmer with room wakes as soon as upload pieces wait.
		var demand <-chan struct{}
		if f.g.Kind == Honest && f.online && f.held < int64(f.g.Size)+int64(f.r.sc.UploadReserve) {
			demand = f.r.demandSig.wait()
		}
		select {
		case <-stop:
			f.finish()
			return
		case <-ctx.Done():
			f.finish()
			return
		case <-timer.C:
		case <-demand:
			f.nextFill = maxTime(time.Now(), f.fill.notBefore) // a failing node still gets backoff
		}
	}
}

// finish takes the farmer's figures out of the live gauges.
func (f *vfarmer) finish() {
	if f.online {
		f.online = false
		f.r.m.online.Add(-1)
	}
	f.r.m.live.Add(-int64(len(f.contracts)))
}

// connect gets a token, retrying until stop.
func (f *vfarmer) connect(ctx context.Context) bool {
	var l lane
	for {
		var resp farmer.NewTokenResponse
		err := f.call(ctx, routeNew, func(ctx context.Context) (err error) {
			resp, err = f.client.New(ctx, f.addr, "", "")
			return err
		})
		if err == nil {
			raw, perr := sluice.ParseToken(resp.Token)
			if perr != nil {
				f.note("the node sent a malformed token")
				return false
			}
			f.token, f.id = resp.Token, raw.FarmerID()
			f.ledger[f.id] = &farmerLedger{ID: f.id, Kind: f.g.Kind}
			f.r.learnK(resp.Heartbeat.LeavesPerChallenge)
			return true
		}
		if strings.Contains(err.Error(), "IP Disallowed") {
			f.r.refused.Add(1) // the node's set-up, not its misbehaviour
			return false
		}
		if !farmer.Retryable(err) {
			f.note("no token: %v", err)
			return false
		}
		if !sleepUntil(ctx, f.stop, time.Now().Add(f.retryDelay(err, &l))) {
			return false
		}
	}
}

// sleepUntil waits until t, reporting false if stopped first.
func sleepUntil(ctx context.Context, stop <-chan struct{}, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// led returns the ledger of the current token.
func (f *vfarmer) led() *farmerLedger { return f.ledger[f.id] }

// step does everything due now: switch on or off, fill, prove, answer,
// and fetch the next challenges.
func (f *vfarmer) step(ctx context.Context) {
	now := time.Now()
	if f.g.Kind == Flaky && !now.Before(f.flipAt) {
		f.flip(now)
	}
	if !f.online {
		return
	}
	if !now.Before(f.nextFill) {
		f.doFill(ctx)
	}
	for _, c := range f.contracts {
		if c.st == cProve {
			f.prove(c, time.Now())
		}
	}
	f.sendAnswers(ctx)
	f.sendFetches(ctx)
}

// flip switches a flaky farmer off or on. Back on, it asks the node for
// the state of every contract: some expired while it was away.
func (f *vfarmer) flip(now time.Time) {
	if f.online {
		f.online = false
		f.r.m.online.Add(-1)
		f.flipAt = now.Add(f.g.Off.D())
		f.stats.Outages++
		f.outages = append(f.outages, [2]time.Time{now, {}})
		return
	}
	f.outages[len(f.outages)-1][1] = now
	f.online = true
	f.r.m.online.Add(1)
	f.flipAt = now.Add(f.g.On.D())
	for _, c := range f.contracts {
		if c.st != cAnswered && c.st != cDoomed {
			c.st = cFetch
		}
	}
	f.fetch.notBefore = now
	f.nextFill = now
}

// fillPace is the wait between /chunk calls while filling, and before
// refilling after contracts ended. Honest farmers refill at once; the
// others at most twice an interval, so that they do not snatch every
// upload piece the node offers again (honest farmers also wake the moment
// pieces wait, see run).
func (f *vfarmer) fillPace() time.Duration {
	if f.g.Kind == Honest {
		return 50 * time.Millisecond
	}
	return f.fillRecheck()
}
func (f *vfarmer) fillRecheck() time.Duration {
	return max(f.r.intervalOr(time.Second)/2, 100*time.Millisecond)
}

// wantBytes is how much to ask /chunk for now: up to the farmer's size,
// or, for an honest farmer while uploads wait for farmers, room for one
// more upload piece (claimed from the shared demand, so that not every
// farmer makes room for the same piece).
func (f *vfarmer) wantBytes() (want int64, claimed bool) {
	size := int64(f.g.Size)
	if want := size - f.held; want > 0 {
		return want, false
	}
	reserve := int64(f.r.sc.UploadReserve)
	if f.g.Kind != Honest || f.held >= size+reserve || !f.r.takeDemand() {
		return 0, false
	}
	return size + reserve - f.held, true
}

// doFill asks for contracts.
func (f *vfarmer) doFill(ctx context.Context) {
	want, claimed := f.wantBytes()
	if want <= 0 {
		f.nextFill = time.Now().Add(f.fillRecheck())
		return
	}
	sent := time.Now()
	var items []farmer.ChunkItem
	err := f.call(ctx, routeChunk, func(ctx context.Context) (err error) {
		items, err = f.client.Chunks(ctx, f.token, want)
		return err
	})
	recv := time.Now()
	if err != nil {
		if claimed {
			f.r.demand.Add(1) // given back without waking anyone: the node is failing
		}
		if f.tokenLost(ctx, err) {
			return
		}
		f.fill.notBefore = recv.Add(f.retryDelay(err, &f.fill))
		f.nextFill = f.fill.notBefore
		return
	}
	f.fill.attempt = 0
	pieces := f.downloadAll(ctx, items)
	for i, it := range items {
		// The piece claimed for this call is already off the demand.
		counted := claimed && it.URL != ""
		if counted {
			claimed = false
		}
		f.add(it, sent, recv, counted, pieces[i])
	}
	if claimed { // no piece came: someone else took it
		f.stats.Surplus++
	}
	if len(items) == 0 {
		f.nextFill = time.Now().Add(f.fillRecheck())
	} else {
		f.nextFill = time.Now().Add(f.fillPace())
	}
}

// piece is a downloaded upload piece, or why it could not be.
type piece struct {
	data []byte
	err  error
}

// maxDownloads bounds one farmer's parallel downloads.
const maxDownloads = 8

// downloadAll fetches the upload pieces among items in parallel (a cheater
// fetches nothing), so that a farmer handed ten pieces at once is not
// stalled for ten downloads before it answers anything.
func (f *vfarmer) downloadAll(ctx context.Context, items []farmer.ChunkItem) []piece {
	out := make([]piece, len(items))
	if f.g.Kind == Cheater {
		return out
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxDownloads)
	for i, it := range items {
		if it.URL == "" || farmer.CheckItem(it) != nil {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].data, out[i].err = f.download(ctx, it)
		})
	}
	wg.Wait()
	return out
}

// add takes one contract handed out by /chunk, with its downloaded bytes
// for an upload piece. counted: an upload piece already taken off the
// demand.
func (f *vfarmer) add(it farmer.ChunkItem, sent, recv time.Time, counted bool, p piece) {
	if old, dup := f.contracts[it.FileHash]; dup {
		// The node hands a piece to a farmer again only once its contract
		// on it closed: the old one expired before the farmer heard.
		if old.st != cDoomed && sent.Before(old.deadline) {
			f.note("the node handed out %s again before its contract's due time", it.FileHash)
			return
		}
		f.expired(old, recv, "chunk")
	}
	due := farmer.Seconds(it.Due)
	f.r.learnInterval(due)
	c := &vcontract{hash: it.FileHash, tag: it.Tag, seed: it.Seed, upload: it.URL != "", ch: it.Challenge,
		st: cProve, deadline: sent.Add(due), after: recv.Add(due), learnedAt: recv}
	f.contracts[c.hash] = c
	f.held += c.tag.Size
	f.r.m.live.Add(1)
	f.stats.Contracts++
	if err := farmer.CheckItem(it); err != nil {
		f.note("malformed chunk: %v", err)
		f.doom(c, recv)
		return
	}
	if c.upload {
		f.stats.UploadPieces++
		if !counted {
			f.r.takeDemand()
		}
		if f.g.Kind != Cheater { // a cheater keeps nothing
			if p.err != nil {
				if errors.Is(p.err, farmer.ErrChunkMismatch) {
					f.note("uploaded chunk %s: %v", it.FileHash, p.err)
				}
				f.doom(c, time.Now())
				return
			}
			c.data = p.data
		}
	}
	if f.g.Kind == Lossy {
		n := c.tag.Leaves()
		c.lost = make([]uint64, (n+63)/64)
		for i := range n {
			if f.rng.Float64() < f.g.Lost {
				c.lost[i/64] |= 1 << (i % 64)
			}
		}
	}
}

// download fetches and checks an uploaded chunk's bytes. It runs beside
// other downloads of the same farmer: it touches no farmer state.
func (f *vfarmer) download(ctx context.Context, it farmer.ChunkItem) ([]byte, error) {
	var data []byte
	err := f.call(ctx, routeChunkData, func(ctx context.Context) error {
		body, err := f.client.Download(ctx, it.URL)
		if err != nil {
			return err
		}
		defer body.Close()
		data, err = io.ReadAll(io.LimitReader(body, it.Size+1))
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := farmer.VerifyChunk(bytes.NewReader(data), it); err != nil {
		f.r.m.addError("chunk does not match its contract")
		return nil, err
	}
	return data, nil
}

// doom marks a contract whose current challenge will not be answered: it
// is fetched once more after its due time, where the node must say it
// expired.
func (f *vfarmer) doom(c *vcontract, now time.Time) {
	if c.st != cDoomed {
		f.held -= c.tag.Size
		f.nextFill = minTime(f.nextFill, now.Add(f.fillPace()))
		// The node offers the piece again once it expires, at its due time.
		c.reofferAt, c.reoffered = maxTime(c.after, now), false
	}
	c.st, c.doomedAt, c.pr = cDoomed, now, proof.Proof{}
	f.dropTree(c)
	// Looked at again a little after the due time, as the original farmer
	// updates at expiration + 5s: not at the instant the node closes it.
	c.after = maxTime(c.after, now).Add(f.doomMargin())
}

// remove forgets a contract that ended.
func (f *vfarmer) remove(c *vcontract, now time.Time) {
	if c.st != cDoomed {
		f.held -= c.tag.Size
	}
	if c.upload && (c.st != cDoomed || !c.reoffered) {
		f.r.addDemand(1)
	}
	f.dropTree(c)
	delete(f.contracts, c.hash)
	f.r.m.live.Add(-1)
	f.nextFill = minTime(f.nextFill, now.Add(f.fillPace()))
}

// dropTree frees a contract's cached tree and its share of the budget.
func (f *vfarmer) dropTree(c *vcontract) {
	if c.tree != nil {
		f.r.treeBytes.Add(-treeBytes(c.tag))
		c.tree = nil
	}
}

// doomMargin is how long after its due time a doomed contract is
// looked at again.
func (f *vfarmer) doomMargin() time.Duration {
	return max(f.r.intervalOr(time.Second)/4, 50*time.Millisecond)
}

// treeBytes estimates a cached tree's memory: every level kept.
func treeBytes(tag proof.Tag) int64 { return 2*tag.Leaves()*32 + 64 }

// prove answers the current challenge as the farmer's kind does, and
// queues the answer.
func (f *vfarmer) prove(c *vcontract, now time.Time) {
	var p proof.Proof
	switch f.g.Kind {
	case Cheater:
		p = fabricate(f.rng, c.tag, c.ch)
	default:
		var err error
		if p, err = f.realProof(c); err != nil {
			f.note("cannot prove %s: %v", c.hash, err)
			f.doom(c, now)
			return
		}
	}
	c.late, c.hit = false, false
	switch f.g.Kind {
	case Lossy:
		f.stats.LossyChallenges++ // (hits below, at prove time: the sim's truth)
		for i := range p.Leaves {
			if idx := p.Leaves[i].Index; c.lost[idx/64]&(1<<(idx%64)) != 0 {
				c.hit = true
				junk := make([]byte, len(p.Leaves[i].Data))
				fillRandom(f.rng, junk)
				p.Leaves[i].Data = junk
			}
		}
		if c.hit {
			f.stats.LossyHits++
		}
	case Late:
		c.late = f.rng.Float64() < f.g.Late
	}
	c.pr = p
	c.st = cReady
	if c.late {
		// After the due time for sure: the node's due is no later than after.
		c.sendAt = c.after.Add(max(f.r.intervalOr(time.Second)/10, 20*time.Millisecond))
	} else {
		c.sendAt = farmer.LatestSend(now, c.deadline, f.r.batchWindow())
	}
}

// realProof proves from the chunk's bytes, with a cached tree when the
// shared budget allows.
func (f *vfarmer) realProof(c *vcontract) (proof.Proof, error) {
	if c.seed == "" && c.data == nil {
		return proof.Proof{}, errors.New("no bytes")
	}
	r := c.reader()
	if c.tree == nil {
		need := treeBytes(c.tag)
		if f.r.treeBytes.Add(need) > int64(f.r.sc.TreeCache) {
			f.r.treeBytes.Add(-need)
			return farmer.ProveReader(r, c.tag, c.ch)
		}
		t, err := proof.BuildTree(r, c.tag.Size, c.tag.LeafSize)
		if err == nil && t.Root() != c.tag.Root {
			err = fmt.Errorf("%w: Merkle root differs from the tag", farmer.ErrChunkMismatch)
		}
		if err != nil {
			f.r.treeBytes.Add(-need)
			return proof.Proof{}, err
		}
		c.tree = t
	}
	return c.tree.Prove(r, c.ch)
}

// fabricate makes up an answer: random leaf bytes and random paths; one
// answer in four is also malformed (an empty leaf), which the node calls
// corrupted rather than invalid.
func fabricate(rng *randv2.Rand, tag proof.Tag, ch proof.Challenge) proof.Proof {
	corrupt := rng.IntN(4) == 0
	depth := 1
	for n := tag.Leaves(); n > 1; n = (n + 1) / 2 {
		depth++
	}
	p := proof.Proof{Leaves: make([]proof.LeafProof, len(ch.Indices))}
	for i, idx := range ch.Indices {
		data := make([]byte, max(tag.LeafSize, 1))
		fillRandom(rng, data)
		if corrupt && i == 0 {
			data = []byte{}
		}
		path := make([]proof.Hash, rng.IntN(depth+1))
		for j := range path {
			fillRandom(rng, path[j][:])
		}
		p.Leaves[i] = proof.LeafProof{Index: idx, Data: data, Path: path}
	}
	return p
}

func fillRandom(rng *randv2.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// sendAnswers sends the ready proofs whose time has come, with every other
// ready proof that may go early, at most maxAnswersPerCall per call.
func (f *vfarmer) sendAnswers(ctx context.Context) {
	now := time.Now()
	if now.Before(f.answer.notBefore) {
		return
	}
	window := f.r.batchWindow()
	due := false
	var batch []*vcontract
	for _, c := range f.contracts {
		if c.st != cReady {
			continue
		}
		if !now.Before(c.sendAt) {
			due = true
		}
		if !now.Before(c.sendAt) || !c.late && !now.Add(window).Before(c.sendAt) {
			batch = append(batch, c)
		}
	}
	if !due {
		return
	}
	for len(batch) > 0 {
		n := min(len(batch), maxAnswersPerCall)
		if !f.answerBatch(ctx, batch[:n]) {
			return
		}
		batch = batch[n:]
	}
}

// answerBatch makes one /answer call; false when it failed as a whole.
func (f *vfarmer) answerBatch(ctx context.Context, batch []*vcontract) bool {
	items := make([]farmer.ProofItem, len(batch))
	for i, c := range batch {
		items[i] = farmer.ProofItem{FileHash: c.hash, Proof: c.pr}
		f.stats.Sent++
		if c.late {
			f.stats.LateSent++
		}
	}
	var report []farmer.ReportItem
	err := f.call(ctx, routeAnswer, func(ctx context.Context) (err error) {
		report, err = f.client.Answers(ctx, f.token, items)
		return err
	})
	now := time.Now()
	if err != nil {
		if f.tokenLost(ctx, err) {
			return false
		}
		d := f.retryDelay(err, &f.answer)
		f.answer.notBefore = now.Add(d)
		unsure := !neverSent(err)
		for _, c := range batch {
			if unsure && !c.uncertain {
				c.uncertain = true
				f.led().Uncertain++
			}
			if c.late || now.Add(d).Before(c.deadline) {
				c.sendAt = now.Add(d)
				continue
			}
			// Too late for this challenge as far as the farmer knows:
			// ask the node where the contract stands (after a restart the
			// node moves due times that fell while it was down).
			c.st = cFetch
			f.fetch.notBefore = minTime(f.fetch.notBefore, now.Add(d))
		}
		return false
	}
	f.answer.attempt = 0
	byHash := make(map[sluice.FileHash]farmer.ReportItem, len(report))
	for _, it := range report {
		byHash[it.FileHash] = it
	}
	for _, c := range batch {
		it, ok := byHash[c.hash]
		if !ok {
			f.note("contract %s missing from the /answer report", c.hash)
			c.sendAt = now
			continue
		}
		f.judge(c, it, now)
	}
	return true
}

// judge applies the node's verdict on one answer.
func (f *vfarmer) judge(c *vcontract, it farmer.ReportItem, now time.Time) {
	led := f.led()
	refused := it.Error == sluice.MsgProofInvalid || it.Error == sluice.MsgProofCorrupted
	// A correct proof refused after a restart: the restarted node issued a
	// new challenge in place of the one the farmer holds (a challenge is
	// handed out before it is durable). The farmer fetches the new one.
	replaced := refused && f.genuine(c) && f.r.restartedSince(c.learnedAt)
	if f.g.Kind == Lossy && !c.judged && !replaced && (it.Status == farmer.StatusOK || refused) {
		// A contract's first challenge meets a fresh loss pattern: over
		// them the detection rate is 1 − (1 − f)^k without survival bias.
		c.judged = true
		f.stats.LossyFirst++
		if it.Status != farmer.StatusOK {
			f.stats.LossyFirstDetected++
		}
	}
	switch {
	case it.Error == "" && it.Status == farmer.StatusOK:
		f.stats.Accepted++
		f.r.m.accepted.Add(1)
		led.Acked++
		// Had an earlier attempt been applied, this one would have been
		// "already answered".
		f.settle(c, notApplied)
		switch {
		case f.g.Kind == Cheater:
			f.stats.BogusAccepted++
			f.note("a made-up proof was accepted for %s", c.hash)
		case c.late && !f.r.restartedSince(c.learnedAt):
			// (After a restart the node moved the due time: not late.)
			f.stats.LateAccepted++
			f.note("an answer sent after the due time was accepted for %s", c.hash)
		case c.hit:
			f.stats.LossyMissed++
			f.note("an answer with a lost leaf was accepted for %s", c.hash)
		}
		f.toAnswered(c)
	case it.Error == sluice.MsgAlreadyAnswered:
		if c.uncertain {
			f.settle(c, applied)
		} else {
			f.note("%q for %s, answered once", it.Error, c.hash)
		}
		f.toAnswered(c)
	case replaced:
		f.stats.Replaced++
		// The earlier attempt may have been applied to the old challenge
		// before the crash: it stays unsettled.
		f.settle(c, unknowable)
		c.st, c.pr = cFetch, proof.Proof{}
		f.fetch.notBefore = minTime(f.fetch.notBefore, now)
	case refused:
		f.stats.Rejected++
		f.r.m.rejected.Add(1)
		f.settle(c, notApplied) // the same proof again: it was never valid
		switch {
		case f.g.Kind == Cheater:
		case f.g.Kind == Lossy && c.hit:
			f.stats.LossyDetected++
		case f.g.Kind == Lossy:
			f.stats.LossyFalseAlarms++
			f.note("a correct answer was rejected (%s) for %s", it.Error, c.hash)
		default:
			f.note("a correct answer was rejected (%s) for %s", it.Error, c.hash)
		}
		f.doom(c, now)
	case it.Error == sluice.MsgContractExpired:
		f.expired(c, now, "answer")
	case it.Status == sluice.MsgNoMoreChallenges || it.Error == sluice.MsgNoMoreChallenges:
		f.stats.Ended++
		f.remove(c, now)
	default:
		f.r.m.addError("answer item: " + it.Error + it.Status)
		f.remove(c, now)
	}
}

// genuine reports whether the farmer's answer to c's current challenge is
// a correct proof: not a cheater's, not naming a lost leaf.
func (f *vfarmer) genuine(c *vcontract) bool { return f.g.Kind != Cheater && !c.hit }

// What the node showed of an answer sent in a call that failed without a
// reply.
type verdict uint8

const (
	notApplied verdict = iota
	applied
	// unknowable: a restart may have replaced the challenge, so neither a
	// new challenge nor a refusal tells whether the answer was applied.
	unknowable
)

// settle ends the doubt about an answer of c whose earlier attempt might
// have been applied unseen. An unknowable one stays among the ledger's
// unsettled answers.
func (f *vfarmer) settle(c *vcontract, v verdict) {
	if !c.uncertain {
		return
	}
	c.uncertain = false
	led := f.led()
	switch v {
	case applied:
		led.Uncertain--
		led.Inferred++
	case notApplied:
		led.Uncertain--
	}
}

func (f *vfarmer) toAnswered(c *vcontract) {
	c.st, c.answered, c.pr = cAnswered, true, proof.Proof{}
}

// expired handles "contract expired" for c: expected after a late answer,
// a rejected one or an outage; for an honest farmer it is a finding.
func (f *vfarmer) expired(c *vcontract, now time.Time, via string) {
	f.stats.Expired++
	f.r.m.expired.Add(1)
	// The node's due time that passed: the current challenge's if it was
	// not answered, else the next one's, one interval later.
	lo, hi := c.deadline, c.after
	if c.answered {
		iv := f.r.intervalOr(0)
		lo, hi = lo.Add(iv), hi.Add(iv)
	}
	switch {
	case c.st == cDoomed:
	case c.late:
		f.stats.LateExpired++
	case f.g.Kind == Cheater:
	case f.offDuring(lo, hi):
	default:
		f.led().Expiries = append(f.led().Expiries, Expiry{Farmer: f.id, Kind: f.g.Kind, FileHash: c.hash.String(),
			DueFrom: lo, DueTo: hi, Seen: now, Via: via})
		f.stats.UnexpectedExpired++
	}
	f.remove(c, now)
}

// offDuring reports whether a flaky farmer was off at some time in
// [lo, hi], or too shortly back on to resync (half an interval).
func (f *vfarmer) offDuring(lo, hi time.Time) bool {
	slack := f.r.intervalOr(time.Second) / 2
	for _, o := range f.outages {
		if !o[0].After(hi) && (o[1].IsZero() || !o[1].Add(slack).Before(lo)) {
			return true
		}
	}
	return false
}

// sendFetches moves answered and doomed contracts whose next challenge is
// due to the fetch batch, and sends it.
func (f *vfarmer) sendFetches(ctx context.Context) {
	now := time.Now()
	var batch []*vcontract
	for _, c := range f.contracts {
		if c.st == cDoomed && c.upload && !c.reoffered && !now.Before(c.reofferAt) {
			c.reoffered = true
			f.r.addDemand(1)
		}
		if (c.st == cAnswered || c.st == cDoomed) && !now.Before(c.after) {
			if c.st == cAnswered {
				c.st = cFetch
			} else {
				batch = append(batch, c) // stays doomed while fetched
			}
		}
		if c.st == cFetch {
			batch = append(batch, c)
		}
	}
	if len(batch) == 0 || now.Before(f.fetch.notBefore) {
		return
	}
	for len(batch) > 0 {
		n := min(len(batch), maxHashesPerCall)
		if !f.fetchBatch(ctx, batch[:n]) {
			return
		}
		batch = batch[n:]
	}
}

// fetchBatch makes one /challenge call; false when it failed as a whole.
func (f *vfarmer) fetchBatch(ctx context.Context, batch []*vcontract) bool {
	hashes := make([]sluice.FileHash, len(batch))
	for i, c := range batch {
		hashes[i] = c.hash
	}
	sent := time.Now()
	var items []farmer.ChallengeItem
	err := f.call(ctx, routeChallenge, func(ctx context.Context) (err error) {
		items, err = f.client.Challenges(ctx, f.token, hashes)
		return err
	})
	recv := time.Now()
	if err != nil {
		if f.tokenLost(ctx, err) {
			return false
		}
		f.fetch.notBefore = recv.Add(f.retryDelay(err, &f.fetch))
		for _, c := range batch {
			if c.st == cDoomed {
				c.after = f.fetch.notBefore
			}
		}
		return false
	}
	f.fetch.attempt = 0
	byHash := make(map[sluice.FileHash]farmer.ChallengeItem, len(items))
	for _, it := range items {
		byHash[it.FileHash] = it
	}
	for _, c := range batch {
		it, ok := byHash[c.hash]
		if !ok {
			f.note("contract %s missing from the /challenge answer", c.hash)
			if c.st == cDoomed {
				c.after = recv.Add(minRefetch)
			}
			continue
		}
		f.next(c, it, sent, recv)
	}
	return true
}

// next applies a /challenge item.
func (f *vfarmer) next(c *vcontract, it farmer.ChallengeItem, sent, recv time.Time) {
	due := farmer.Seconds(it.Due)
	switch {
	case it.Error == sluice.MsgContractExpired:
		f.expired(c, recv, "challenge")
	case it.Error != "" || it.Status != "":
		if it.Status == sluice.MsgNoMoreChallenges {
			f.stats.Ended++
		} else {
			f.r.m.addError("challenge item: " + it.Error + it.Status)
		}
		f.remove(c, recv)
	case it.Answered:
		// The node has the current challenge as answered: an unseen
		// answer was applied, or we asked a little early.
		f.settle(c, applied)
		if c.st == cDoomed {
			f.note("contract %s answered although its answer was rejected", c.hash)
		}
		c.st, c.answered = cAnswered, true
		c.after = maxTime(recv.Add(due), recv.Add(minRefetch))
	case len(it.Challenge.Indices) == 0:
		f.note("challenge without indices for %s", c.hash)
		f.remove(c, recv)
	default:
		same := it.Challenge.Seed == c.ch.Seed
		switch {
		case same:
			f.settle(c, notApplied)
		case f.r.restartedSince(c.learnedAt):
			// A restarted node issues a fresh challenge in place of one it
			// handed out but had not stored: answered or not, the seed
			// changes.
			f.settle(c, unknowable)
		default:
			// A new challenge means the old one was answered (else the
			// contract would have expired).
			f.settle(c, applied)
		}
		if c.st == cDoomed {
			// A restart since the farmer learned the due time may have
			// moved it (the node moves due times that fell while down).
			if !f.r.restartedSince(c.learnedAt) {
				f.note("contract %s still live %s after its due time (%s) passed with an answer rejected at %s; new challenge due in %s (same: %v)",
					c.hash, recv.Sub(c.reofferAt).Round(time.Millisecond), clock(c.reofferAt), clock(c.doomedAt), due, same)
			}
			f.held += c.tag.Size
		}
		c.ch, c.answered = it.Challenge, false
		c.deadline, c.after, c.learnedAt = sent.Add(due), recv.Add(due), recv
		c.st = cProve
	}
}

// tokenLost handles "Nonexistent token.": the node forgot an acknowledged
// token, which it must never do. The farmer starts over with a new one.
func (f *vfarmer) tokenLost(ctx context.Context, err error) bool {
	if !farmer.IsNonexistentToken(err) {
		return false
	}
	f.note("the node no longer knows the token")
	f.led().TokenLost = true
	now := time.Now()
	for _, c := range f.contracts {
		f.remove(c, now)
	}
	f.token, f.id = "", ""
	f.fill, f.answer, f.fetch = lane{}, lane{}, lane{}
	f.dead = !f.connect(ctx)
	return true
}

// nextWake is when step has something to do next.
func (f *vfarmer) nextWake(now time.Time) time.Time {
	iv := f.r.intervalOr(time.Second)
	wake := now.Add(max(iv/4, 50*time.Millisecond)) // look at upload demand now and then
	if f.g.Kind == Flaky {
		wake = minTime(wake, f.flipAt)
	}
	if !f.online {
		return f.flipAt
	}
	if f.held < int64(f.g.Size) || f.g.Kind == Honest && f.r.demand.Load() > 0 {
		wake = minTime(wake, f.nextFill)
	}
	slack := min(f.r.batchWindow(), 20*time.Millisecond)
	for _, c := range f.contracts {
		switch c.st {
		case cProve:
			return now
		case cReady:
			wake = minTime(wake, maxTime(c.sendAt, f.answer.notBefore))
		case cAnswered, cDoomed:
			wake = minTime(wake, maxTime(c.after.Add(slack), f.fetch.notBefore))
			if c.st == cDoomed && c.upload && !c.reoffered {
				wake = minTime(wake, c.reofferAt)
			}
		case cFetch:
			wake = minTime(wake, f.fetch.notBefore)
		}
	}
	return wake
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
