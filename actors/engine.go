// Package actors runs Sluice's entities as protoactor actors: one actor per
// farmer token and per contract, each owning its state and its deadline
// timer, under manager actors that spawn and supervise them. Actors sequence
// and persist; the rules they apply live in the root package.
package actors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/proof"
)

// Committer is the snapshot writer as the actors see it (persistence.Writer).
type Committer interface {
	// Commit returns once the records are durably committed together.
	Commit(ctx context.Context, recs ...sluice.Record) error
	// CommitBy is Commit with a deadline and no context: it arms no
	// timer, and once the write has started it waits for the outcome.
	CommitBy(by time.Time, recs ...sluice.Record) error
	// Enqueue hands records over without waiting. Used only for changes
	// that can be derived again after a crash (a newly issued challenge).
	Enqueue(recs ...sluice.Record)
}

// Config is what the engine needs to know about contracts and limits.
type Config struct {
	Terms  sluice.Terms
	Scheme proof.Scheme
	// ChunkSizes is the mix prototype chunks are cut from (largest first
	// that fits the request).
	ChunkSizes []int64
	// MaxChunksPerRequest caps one /chunk call (0: no cap).
	MaxChunksPerRequest int
	// MaxBytesPerAddress caps the live contract bytes of one payout address.
	MaxBytesPerAddress int64
	// AskTimeout bounds a request to an actor when the caller's context
	// carries no deadline.
	AskTimeout time.Duration
	// Rand is the randomness for tokens, chunk seeds and challenge seeds.
	// crypto/rand when nil; tests may pass a deterministic reader.
	Rand io.Reader

	// MaxTokensPerIP caps the live tokens of one client address (IPv6: one
	// /64); 0 means no cap.
	MaxTokensPerIP int
	// TokenRate and TokenBurst limit each token's API requests (a batch
	// call counts once); TokenRate 0 means no limit.
	TokenRate  float64
	TokenBurst int
	// StatusRefresh is how often the status list's sorted view is rebuilt:
	// the list's staleness bound.
	StatusRefresh time.Duration
	// Locator finds a client address's location; nil means none.
	Locator Locator
	// IPHashKey keys the farmers' ip_hash (HMAC-SHA256); empty means a
	// random key kept in the store, the same across restarts.
	IPHashKey []byte
	// Whitelist, when set, allows tokens only for listed addresses whose
	// balance is at least MinBalance.
	Whitelist  bool
	MinBalance *big.Int
	// Uploads configures the uploader API's side.
	Uploads UploadConfig
	// ArchiveRetention is how long a closed contract's record is kept to
	// answer its farmer ("contract expired", "no more challenges"); older
	// ones are deleted, and questions about them answer "contract not
	// found". 0 keeps them for ever. Needs a store that can purge.
	ArchiveRetention time.Duration
}

// Locator finds where a client address is (geo.DB implements it).
type Locator interface {
	Locate(ip netip.Addr) *sluice.Location
}

func (c *Config) defaults() {
	if c.Scheme == nil {
		c.Scheme = proof.MerkleSegment(proof.DefaultParams())
	}
	if c.Terms.Interval <= 0 {
		c.Terms.Interval = 5 * time.Minute
	}
	if len(c.ChunkSizes) == 0 {
		c.ChunkSizes = []int64{32 << 10}
	}
	if c.MaxBytesPerAddress <= 0 {
		c.MaxBytesPerAddress = 1 << 30
	}
	if c.AskTimeout <= 0 {
		c.AskTimeout = 10 * time.Second
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.StatusRefresh <= 0 {
		c.StatusRefresh = 2 * time.Second
	}
	if c.TokenBurst <= 0 {
		c.TokenBurst = max(1, int(c.TokenRate*5))
	}
	c.Uploads.defaults()
	if c.MinBalance == nil {
		c.MinBalance = new(big.Int)
	}
}

// Engine owns the actor system and is the request path's entry point: each
// method decodes nothing and decides nothing, it sends messages to the
// entity actors through the Directory and gathers their replies.
type Engine struct {
	cfg     Config
	sys     *actor.ActorSystem
	dir     Directory
	store   Store
	writer  Committer
	sched   *scheduler.TimerScheduler
	log     *zap.Logger
	metrics *metrics.Set
	ledger  *ledger
	// chunkMakers has a slot for each prototype chunk being made at once
	// (seededChunk): as many as there are CPUs.
	chunkMakers chan struct{}
	pool        *uploadPool
	quotes      *quoteIndex
	needs       *blobNeeds // nil without a temporary store
	nonces      *nonceBook
	ips         *ipLedger
	status      *statusIndex
	ipKey       []byte
	stop        chan struct{}
	stopped     sync.WaitGroup
	// pending holds signed requests being turned into tokens, so two
	// concurrent replays of one signature cannot both pass.
	pendingMu sync.Mutex
	pending   map[string]bool

	managers map[sluice.RecordKind][]*actor.PID
	props    map[sluice.RecordKind]*actor.Props
	// dispatch runs the entities' mailboxes (see reusingDispatcher).
	dispatch *reusingDispatcher
	// gone ticks while an answer waits on actors, to look whether they
	// are gone (shared with the directory's Ask).
	gone *sharedTicks
	// deadlines holds every live contract's deadline under one timer.
	deadlines *deadlines
	// boot holds each entity's first state from its spawn until its actor
	// starts and takes it (Identity → *sluice.Token or *sluice.Contract).
	boot sync.Map
	// rearming counts the contracts loaded at start-up whose actors have
	// not yet armed their deadlines.
	rearming sync.WaitGroup

	randMu sync.Mutex // Rand need not be safe for concurrent use
}

// Start builds the actor system, spawns the managers, loads every live
// token and contract from the store, re-arms their timers and returns when
// all of them are running.
func Start(ctx context.Context, cfg Config, store Store, writer Committer, m *metrics.Set, log *zap.Logger) (*Engine, error) {
	cfg.defaults()
	if m == nil {
		m = metrics.New()
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		// protoactor logs through slog; bridge it into the node's zap core
		// at warn level so its per-actor lifecycle chatter stays out.
		core := log.Named("protoactor").Core()
		return slog.New(zapslog.NewHandler(core, zapslog.WithName("protoactor")))
	}))
	gone := newSharedTicks(goneCheck)
	e := &Engine{
		cfg:         cfg,
		sys:         sys,
		dir:         &localDirectory{sys: sys, timeout: cfg.AskTimeout, gone: gone},
		gone:        gone,
		store:       store,
		writer:      writer,
		sched:       scheduler.NewTimerScheduler(sys.Root),
		log:         log,
		metrics:     m,
		ledger:      newLedger(),
		chunkMakers: make(chan struct{}, runtime.GOMAXPROCS(0)),
		ips:         newIPLedger(),
		pool:        newUploadPool(cfg.Uploads.Redundancy, max(2*cfg.Terms.Interval, time.Minute)),
		quotes:      newQuoteIndex(),
		nonces:      newNonceBook(),
		status:      newStatusIndex(),
		stop:        make(chan struct{}),
		pending:     map[string]bool{},
		managers:    map[sluice.RecordKind][]*actor.PID{},
		dispatch:    newReusingDispatcher(dispatchThroughput, dispatchIdle, dispatchMaxIdle),
	}
	e.deadlines = newDeadlines(func(pid *actor.PID) { sys.Root.Send(pid, deadlineFired) })
	if cfg.Uploads.Blobs != nil {
		e.needs = newBlobNeeds(cfg.Uploads.Blobs, cfg.Uploads.Retention, e.now)
		e.pool.needSource = e.needPieceSource
	}
	e.props = map[sluice.RecordKind]*actor.Props{
		sluice.KindToken:    newTokenProps(e),
		sluice.KindContract: newContractProps(e),
		sluice.KindQuote:    newQuoteProps(e),
	}
	for _, kind := range []sluice.RecordKind{sluice.KindToken, sluice.KindContract, sluice.KindQuote} {
		for i := range shards {
			pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(newManager,
				actor.WithSupervisor(entitySupervision(log))), managerName(kind, i))
			if err != nil {
				return nil, fmt.Errorf("spawn manager: %w", err)
			}
			e.managers[kind] = append(e.managers[kind], pid)
		}
	}
	if err := e.loadIPKey(ctx); err != nil {
		e.Stop()
		return nil, err
	}
	if err := e.recoverQuotes(ctx); err != nil {
		e.Stop()
		return nil, err
	}
	if err := e.recover(ctx); err != nil {
		e.Stop()
		return nil, err
	}
	// Uploads being stored may have become held while the node was down.
	for _, id := range e.pool.quotes() {
		e.dir.Tell(quoteIdentity(id), &chunksHeld{})
	}
	e.status.rebuild(e.now())
	e.stopped.Add(1)
	go e.refreshStatus()
	if p, ok := store.(Purger); ok && cfg.ArchiveRetention > 0 {
		e.stopped.Add(1)
		go e.purgeArchives(p)
	}
	return e, nil
}

// refreshStatus rebuilds the status list's view every StatusRefresh.
func (e *Engine) refreshStatus() {
	defer e.stopped.Done()
	t := time.NewTicker(e.cfg.StatusRefresh)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.status.rebuild(e.now())
		}
	}
}

// Stop stops every actor (their timers are cancelled as they stop). The
// snapshot writer is closed by its owner afterwards, flushing what the
// actors handed it.
func (e *Engine) Stop() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	e.stopped.Wait()
	var futures []actor.Future
	for _, pids := range e.managers {
		for _, pid := range pids {
			futures = append(futures, e.sys.Root.StopFuture(pid))
		}
	}
	for _, f := range futures {
		_ = f.Wait()
	}
	e.sys.Shutdown()
	e.dispatch.stop()
	e.deadlines.stop()
}

// Params are the public parameters of the proof scheme, sent as /new's
// "heartbeat".
func (e *Engine) Params() proof.Params { return e.cfg.Scheme.Params() }

func (e *Engine) now() time.Time { return time.Now() }

// commitBy is the deadline of an actor's own commit (Writer.CommitBy): a
// commit not started within the ask timeout is dropped, one that started
// is waited for, so the actor keeps the state the store holds. (With a
// context's timeout, a commit that outlived it could land while the actor
// kept its old state, and the actor's next change, of the same version,
// would then be ignored by the store.)
func (e *Engine) commitBy() time.Time { return time.Now().Add(e.cfg.AskTimeout) }

// read fills b from the engine's randomness.
func (e *Engine) read(b []byte) error {
	e.randMu.Lock()
	defer e.randMu.Unlock()
	_, err := io.ReadFull(e.cfg.Rand, b)
	return err
}

// rng is an io.Reader over the engine's randomness, safe to share.
func (e *Engine) rng() io.Reader { return lockedReader{e} }

type lockedReader struct{ e *Engine }

func (r lockedReader) Read(b []byte) (int, error) {
	if err := r.e.read(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// spawn asks the shard's manager to spawn an entity actor with its first
// state (*sluice.Token or *sluice.Contract) and waits.
func (e *Engine) spawn(who Identity, state any) error {
	e.boot.Store(who, state)
	mgr := e.managers[who.Kind][shardOf(who.ID)]
	res, err := e.sys.Root.RequestFuture(mgr, &spawnEntity{Name: who.ID, Props: e.props[who.Kind]}, e.cfg.AskTimeout).Result()
	if err == nil {
		err = res.(*spawnEntityReply).Err
	}
	if err != nil {
		e.boot.Delete(who)
		return fmt.Errorf("%w: spawn %s: %v", sluice.ErrUnavailable, who.Kind, err)
	}
	return nil
}

// spawnAsync asks for a spawn without waiting (bulk start-up); failed, if
// not nil, is called if the spawn fails.
func (e *Engine) spawnAsync(who Identity, state any, failed func()) {
	e.boot.Store(who, state)
	e.sys.Root.Send(e.managers[who.Kind][shardOf(who.ID)], &spawnEntity{Name: who.ID, Props: e.props[who.Kind], Failed: failed})
}

// entityID is an entity actor's identity id: its name under its manager.
func entityID(pid *actor.PID) string {
	id := pid.Id
	if i := strings.IndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}

// encode makes the snapshot record of a token or contract.
func tokenRecord(t *sluice.Token) sluice.Record {
	b, err := json.Marshal(t)
	if err != nil {
		panic(fmt.Sprintf("encode token: %v", err)) // plain struct: cannot fail
	}
	return sluice.Record{Kind: sluice.KindToken, ID: t.Farmer, Version: t.Version, Live: !t.Deleted, State: b}
}

func contractRecord(c *sluice.Contract) sluice.Record {
	b := c.AppendJSON(make([]byte, 0, 640))
	return sluice.Record{Kind: sluice.KindContract, ID: c.ID(), Owner: c.Farmer, Version: c.Version, Live: c.Live(), State: b}
}

func decodeToken(r sluice.Record) (sluice.Token, error) {
	var t sluice.Token
	err := json.Unmarshal(r.State, &t)
	return t, err
}

func decodeContract(r sluice.Record) (sluice.Contract, error) {
	return sluice.DecodeContract(r.State)
}

// unavailable classifies a store failure for the API.
func unavailable(err error) error {
	if err == nil || errors.Is(err, sluice.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %v", sluice.ErrUnavailable, err)
}
