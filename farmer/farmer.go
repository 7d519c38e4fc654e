package farmer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

// Defaults of Config.
const (
	DefaultBatchWindow   = time.Second
	DefaultProgressEvery = 5 * time.Second
	DefaultTreeCache     = 64 << 20
)

// Config is a farmer's settings. Node, Address, Size and Dir are required;
// the rest have defaults. The CLI maps its flags onto it one to one.
type Config struct {
	// Node is the node's base URL, such as "https://node.example:8443".
	Node string
	// Address is the payout address the token is asked for.
	Address string
	// Message and Signature prove ownership of Address; when Signature is
	// set the token is asked for with POST /new, else with GET /new.
	Message, Signature string
	// Size is how many bytes of contracts to hold.
	Size int64
	// Dir holds token.json and the chunks (Dir/chunks/<file_hash>).
	Dir string
	// BatchWindow is how long ready answers are gathered into one call
	// (never past halfway to the earliest deadline); also how long due
	// challenge fetches are gathered. 0 means DefaultBatchWindow; negative
	// means send at once.
	BatchWindow time.Duration
	// Log receives structured events; nil means none.
	Log *zap.Logger
	// Progress receives one line every ProgressEvery; nil means none.
	Progress io.Writer
	// ProgressEvery is the progress period; 0 means DefaultProgressEvery.
	ProgressEvery time.Duration
	// HTTPClient is shared by every call; nil means DefaultHTTPClient().
	HTTPClient *http.Client

	// Memory keeps prototype (seeded) chunks as their seed instead of
	// writing them to Dir: the bytes are regenerated to prove. It is for
	// simulators running many farmers; such contracts are not resumed
	// after a restart. Chunks of uploaded files are always written.
	Memory bool
	// TreeCache bounds the memory of cached Merkle trees (about 64 bytes
	// per 1 KiB leaf); a chunk without a cached tree is re-read in full for
	// each challenge. 0 means DefaultTreeCache; negative disables the cache.
	TreeCache int64
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Node == "":
		return c, errors.New("farmer: a node URL is required")
	case c.Address == "":
		return c, errors.New("farmer: an address is required")
	case c.Size <= 0:
		return c, fmt.Errorf("farmer: size %d, want > 0", c.Size)
	case c.Dir == "":
		return c, errors.New("farmer: a directory is required")
	case (c.Message == "") != (c.Signature == ""):
		return c, errors.New("farmer: message and signature go together")
	}
	if _, err := parseNode(c.Node); err != nil {
		return c, err
	}
	if c.BatchWindow == 0 {
		c.BatchWindow = DefaultBatchWindow
	}
	c.BatchWindow = max(c.BatchWindow, 0)
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.HTTPClient == nil {
		c.HTTPClient = DefaultHTTPClient()
	}
	if c.TreeCache == 0 {
		c.TreeCache = DefaultTreeCache
	}
	return c, nil
}

// Log event names.
const (
	evConnected       = "farmer.connected"
	evTokenLost       = "farmer.token_lost"
	evRetry           = "request.retry"
	evContractAdded   = "contract.added"
	evContractDropped = "contract.dropped"
	evContractResumed = "contract.resumed"
	evChunkRefused    = "chunk.refused"
	evProofRejected   = "proof.rejected"
	evProofFailed     = "proof.failed"
	evAnswerFailed    = "answer.failed"
	evChallengeFailed = "challenge.failed"
	evFillFailed      = "fill.failed"
	evNodeOverfilled  = "fill.overfilled"
	evFillSmaller     = "fill.smaller"
)

// errTokenLost ends a session whose token the node no longer knows; Run
// then gets a new token.
var errTokenLost = errors.New("farmer: the node no longer knows the token")

// Run farms until ctx ends, then returns nil; it returns an error only for
// a problem retrying cannot fix (bad config, a node refusing the address).
//
// It checks that the node answers, reuses the token saved in Dir (or gets
// a new one and saves it), resumes the contracts whose chunks are still on
// disk, and then fills contracts up to Size and answers every challenge
// before its deadline. On ctx cancel it stops its calls and goroutines and
// keeps the token file and chunk files for the next start.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	client, err := NewClient(cfg.Node, cfg.HTTPClient)
	if err != nil {
		return err
	}
	chunkDir := filepath.Join(cfg.Dir, "chunks")
	if err := os.MkdirAll(chunkDir, 0o700); err != nil {
		return fmt.Errorf("farmer: %w", err)
	}
	stop := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := retry(ctx, cfg.Log, "GET /", client.Ping); err != nil {
		return stop(fmt.Errorf("farmer: node %s does not answer: %w", NormalizeNode(cfg.Node), err))
	}
	for attempt := 0; ; attempt++ {
		s, err := connect(ctx, cfg, client, chunkDir)
		if err != nil {
			return stop(err)
		}
		err = s.run(ctx)
		if !errors.Is(err, errTokenLost) {
			return stop(err)
		}
		cfg.Log.Warn(evTokenLost, zap.String("farmer", s.farmerID))
		if !sleep(ctx, Backoff(attempt, rand.Float64())) {
			return nil
		}
	}
}

// connect gets a token: the saved one if the node still knows it, else a
// new one, which it saves.
func connect(ctx context.Context, cfg Config, client *Client, chunkDir string) (*session, error) {
	saved, ok, err := LoadToken(cfg.Dir)
	if err != nil {
		cfg.Log.Warn("farmer.token_file", zap.Error(err))
		ok = false
	}
	var resp NewTokenResponse
	fresh := true
	if ok && saved.Reusable(cfg.Node, cfg.Address) {
		err := retry(ctx, cfg.Log, "GET /heartbeat", func(ctx context.Context) (err error) {
			resp, err = client.Heartbeat(ctx, saved.Token)
			return err
		})
		switch {
		case err == nil:
			fresh = false
			if resp.Token == "" {
				resp.Token = saved.Token
			}
		case IsNonexistentToken(err):
			cfg.Log.Info("farmer.token_unknown")
		default:
			return nil, fmt.Errorf("farmer: reconnecting: %w", err)
		}
	}
	if fresh {
		err := retry(ctx, cfg.Log, "/new", func(ctx context.Context) (err error) {
			resp, err = client.New(ctx, cfg.Address, cfg.Message, cfg.Signature)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("farmer: getting a token: %w", err)
		}
	}
	raw, err := sluice.ParseToken(resp.Token)
	if err != nil {
		return nil, fmt.Errorf("farmer: the node sent a malformed token")
	}
	if resp.Type != proof.SchemeMerkleSegment || resp.Heartbeat.Scheme != proof.SchemeMerkleSegment {
		return nil, fmt.Errorf("farmer: unknown proof scheme %q", resp.Type)
	}
	if err := resp.Heartbeat.Validate(); err != nil {
		return nil, fmt.Errorf("farmer: %w", err)
	}
	if fresh {
		if err := SaveToken(cfg.Dir, TokenFile{Node: cfg.Node, Address: cfg.Address, Token: resp.Token}); err != nil {
			return nil, err
		}
	}
	s := newSession(cfg, client, resp.Token, resp.Heartbeat, chunkDir)
	s.farmerID = raw.FarmerID()
	s.fresh = fresh
	cfg.Log.Info(evConnected, zap.String("farmer", s.farmerID), zap.Bool("new_token", fresh),
		zap.String("node", NormalizeNode(cfg.Node)))
	return s, nil
}

// retry calls fn until it succeeds, fails for good, or ctx ends, waiting
// RetryDelay between attempts. It is for the calls made once at start-up;
// the loop schedules its own retries.
func retry(ctx context.Context, log *zap.Logger, what string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return err
		}
		d := RetryDelay(err, attempt, rand.Float64())
		log.Warn(evRetry, zap.String("call", what), zap.Error(err), zap.Duration("retry_in", d))
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// sleep waits d or until ctx ends, reporting whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
