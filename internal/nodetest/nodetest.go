// Package nodetest starts real Sluice nodes for tests in other packages: a
// real store (embedded in a temporary directory, or Postgres in a fresh
// schema), the snapshot writer, the actor engine and the HTTP server on a
// real loopback listener.
package nodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/blobstore"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/blobs"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/microservice"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/persistence/embedded"
	"github.com/sluicehq/sluice/persistence/postgres"
	"github.com/sluicehq/sluice/persistence/postgres/pgtest"
)

// Store names one of the two stores.
type Store struct {
	Name string
	// At makes a fresh location for the store and returns a function that
	// opens the store there; each call opens the same location again, so
	// a node restarted on it finds what the previous one committed.
	At func(t *testing.T) func() actors.Store
}

// Open opens the store at a fresh location of its own.
func (s Store) Open(t *testing.T) actors.Store { return s.At(t)() }

// Stores returns both stores. The Postgres one skips (or fails under
// SLUICE_REQUIRE_POSTGRES=1) when no test database is configured.
func Stores(t *testing.T) []Store {
	return []Store{
		{Name: "embedded", At: func(t *testing.T) func() actors.Store {
			dir := t.TempDir()
			return func() actors.Store {
				s, err := embedded.Open(dir, zap.NewNop())
				if err != nil {
					t.Fatalf("open embedded store: %v", err)
				}
				return s
			}
		}},
		{Name: "postgres", At: func(t *testing.T) func() actors.Store {
			dsn := pgtest.DSN(t)
			return func() actors.Store {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				s, err := postgres.Open(ctx, dsn, zap.NewNop())
				if err != nil {
					t.Fatalf("open postgres store: %v", err)
				}
				return s
			}
		}},
	}
}

// Options tune a test node.
type Options struct {
	Engine actors.Config
	HTTP   sluicehttp.Config
	// Listen is the listener's address; empty means 127.0.0.1:0.
	Listen string
	// RegisterSigners may register microservices on the private listener.
	RegisterSigners []common.Address
	// ServerTimeout is the public http.Server's ReadTimeout and
	// WriteTimeout (0: none).
	ServerTimeout time.Duration
}

// Node is a running node.
type Node struct {
	URL     string // server root, no trailing slash
	Private string // private listener root
	API     string // URL + /api/downstream/v1
	Engine  *actors.Engine
	Metrics *metrics.Set
	Store   actors.Store
}

// Start runs a node on store until the test ends.
func Start(t *testing.T, store actors.Store, opt Options) *Node {
	t.Helper()
	if opt.Engine.Terms.Interval == 0 {
		opt.Engine.Terms = sluice.Terms{Interval: time.Minute, Challenges: 256}
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	m := metrics.New()
	bs, err := blobstore.Open(t.TempDir())
	if err != nil {
		t.Fatalf("open blob store: %v", err)
	}
	t.Cleanup(func() { bs.Close() })
	ad := blobs.Adapter{Store: bs}
	opt.Engine.Uploads.Blobs = ad
	opt.HTTP.Blobs, opt.HTTP.BlobHandler = ad, bs.Handler("/ipfs/")
	reg, err := microservice.NewRegistry(context.Background(), store, microservice.RegistryConfig{
		Allowed: opt.RegisterSigners, Reserved: []string{"sluice"}})
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	t.Cleanup(reg.Close)
	opt.Engine.Uploads.Registry = reg
	if opt.Engine.Uploads.Client == nil {
		opt.Engine.Uploads.Client = &microservice.Client{Timeout: 5 * time.Second}
	}
	w := persistence.NewWriter(store, persistence.WriterOptions{Observe: m.ObserveBatch})
	e, err := actors.Start(context.Background(), opt.Engine, store, w, m, log)
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	srv := sluicehttp.New(opt.HTTP, m, log)
	srv.SetFarmers(e)
	hs := httptest.NewUnstartedServer(srv)
	hs.Config.ReadTimeout, hs.Config.WriteTimeout = opt.ServerTimeout, opt.ServerTimeout
	hs.Config.MaxHeaderBytes = sluicehttp.MaxHeaderBytes
	if opt.Listen != "" {
		ln, err := net.Listen("tcp", opt.Listen)
		if err != nil {
			t.Fatalf("listen on %s: %v", opt.Listen, err)
		}
		hs.Listener.Close()
		hs.Listener = ln
	}
	hs.Listener = sluicehttp.JSONErrors(hs.Config, hs.Listener, true)
	hs.Start()
	private := httptest.NewUnstartedServer(srv.Private(reg))
	private.Listener = sluicehttp.JSONErrors(private.Config, private.Listener, false)
	private.Start()
	t.Cleanup(private.Close)
	t.Cleanup(func() {
		hs.Close()
		e.Stop()
		w.Close()
		store.Close()
	})
	return &Node{URL: hs.URL, Private: private.URL, API: hs.URL + "/api/downstream/v1", Engine: e, Metrics: m, Store: store}
}

// The engine serves both APIs.
var (
	_ sluicehttp.Farmers = (*actors.Engine)(nil)
	_ sluicehttp.Uploads = (*actors.Engine)(nil)
)

// Call sends body (JSON, when not nil) to url and decodes the JSON reply
// into out (when not nil), failing the test on a transport error or a
// reply that does not decode. It returns the status code.
func Call(t *testing.T, method, url string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %q", method, url, res.StatusCode, raw)
		}
	}
	return res.StatusCode
}
