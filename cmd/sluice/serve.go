package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5/pgconn"
	"io"
	"io/fs"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/blobstore"
	"github.com/sluicehq/sluice/chain"
	"github.com/sluicehq/sluice/geo"
	sluicehttp "github.com/sluicehq/sluice/http"
	sluiceblobs "github.com/sluicehq/sluice/internal/blobs"
	"github.com/sluicehq/sluice/internal/gcheadroom"
	"github.com/sluicehq/sluice/internal/payments"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/microservice"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/persistence/embedded"
	"github.com/sluicehq/sluice/persistence/postgres"
	"github.com/sluicehq/sluice/proof"
)

// Stable log event names of the node's life.
const (
	eventListening = "node.listening"
	eventReady     = "node.ready"
	eventStopping  = "node.stopping"
	eventStopped   = "node.stopped"
	eventStore     = "node.store"
	eventGeoIP     = "node.geoip"
	eventRegistry  = "node.registry"
	eventChain     = "node.chain"
)

type serveConfig struct {
	listen           string
	databaseURL      string
	dataDir          string
	logLevel         string
	requireSignature bool
	interval         time.Duration
	challenges       int
	chunkSizes       []int64
	chunksPerRequest int
	maxPerAddress    int64
	defaultChunk     int64
	maxBody          int64
	leafSize         int
	leavesPerChall   int
	shutdownTimeout  time.Duration
	requestTimeout   time.Duration
	uploadIdle       time.Duration
	downloadIdle     time.Duration
	gcHeadroom       int64
	maxTokensPerIP   int
	trustedProxies   []netip.Prefix
	tokenRate        float64
	tokenBurst       int
	quoteRate        float64
	quoteBurst       int
	statusRefresh    time.Duration
	archiveRetention time.Duration
	ipHashSecret     string
	whitelist        bool
	minBalance       *big.Int
	geoipDB          string
	privateListen    string
	uploadDir        string
	quoteTTL         time.Duration
	storageTTL       time.Duration
	registerSigners  []common.Address
	builtinType      string
	redundancy       int
	uploadChunk      int64
	uploadRate       *big.Rat
	retention        time.Duration
	chainRPC         string
	chainID          int64
	confirmations    int
	chainTokens      []chain.Token
	payeeKeyFile     string
}

// minTokenRate is the slowest --token-rate or --quote-rate: one request a
// day.
const minTokenRate = 1.0 / 86400

// rateWant says what a rate flag takes.
const rateWant = "want 0 (no limit) or requests per second as a decimal number, at least 0.0000116 (one a day), such as 2 or 0.5"

func parseServe(args []string, out io.Writer) (serveConfig, error) {
	fs := newFlagSet("sluice serve", "SLUICE_", out)
	listen := fs.String("listen", ":8000", "address of the public HTTP listener")
	dbURL := fs.String("database-url", "", "PostgreSQL URL; empty uses the embedded store in --data-dir")
	dataDir := fs.String("data-dir", "./data", "directory of the embedded store (when no database URL is set)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	reqSig := fs.Bool("require-signature", false, "demand a signed POST /new (turn on in production)")
	interval := fs.Duration("challenge-interval", 5*time.Minute, "time between two challenges of a contract")
	challenges := fs.Int("challenges-per-contract", 256, "challenges a prototype contract lives for (0: no limit)")
	sizes := fs.Sizes("chunk-sizes", "32768,1MiB,32MiB", "sizes prototype chunks are cut from, largest that fits first")
	perReq := fs.Int("chunks-per-request", 10, "most contracts one /chunk call hands out (0: no cap)")
	perAddr := fs.Bytes("max-bytes-per-address", 1<<30, "most bytes of live contracts per payout address")
	defChunk := fs.Bytes("default-chunk-size", 32768, "size /chunk/{token} asks for when it names none")
	maxBody := fs.Bytes("max-body", 16<<20, "largest request body accepted, after decompression")
	leaf := fs.Int("leaf-size", 1024, "proof leaf size in bytes")
	k := fs.Int("leaves-per-challenge", 4, "leaves one challenge asks for")
	shutdown := fs.Duration("shutdown-timeout", 30*time.Second, "how long a graceful stop may take")
	reqTimeout := fs.Duration("request-timeout", 30*time.Second, "longest a request may take, reading its body included (uploads: counted from their last byte)")
	uploadIdle := fs.Duration("upload-idle-timeout", 30*time.Second, "longest an upload's body may send nothing before it is cut (408); uploads have no overall limit")
	downloadIdle := fs.Duration("download-idle-timeout", 30*time.Second, "longest a client downloading a file under /ipfs/ may take no bytes before the connection is cut; downloads have no overall limit")
	perIP := fs.Int("max-tokens-per-ip", 5, "most live tokens per client address, IPv6 counted per /64 (0: no limit)")
	proxies := fs.String("trusted-proxies", "", "comma-separated addresses or CIDRs whose X-Forwarded-For is believed")
	rate := fs.String("token-rate", "20", "API requests per second allowed to each token, on average (0: no limit)")
	burst := fs.Int("token-burst", 100, "API requests a token may send at once")
	qRate := fs.String("quote-rate", "2", "getQuote calls per second allowed to each client address, IPv6 counted per /64, on average (0: no limit)")
	qBurst := fs.Int("quote-burst", 60, "getQuote calls a client address may send at once")
	refresh := fs.Duration("status-refresh", 2*time.Second, "how often the status list is rebuilt (its staleness bound)")
	archive := fs.Duration("archive-retention", 7*24*time.Hour, "how long a closed contract's record answers its farmer before it is deleted (0: kept for ever; else at least 1h)")
	secret := fs.String("ip-hash-secret", "", "key of the farmers' ip_hash; empty keeps a random key in the store")
	wl := fs.Bool("whitelist", false, "allow tokens only for whitelisted addresses (import with sluice whitelist import)")
	minBal := fs.String("whitelist-min-balance", "10000", "least balance a whitelisted address needs")
	geoipDB := fs.String("geoip-db", "", "path of a MaxMind GeoLite2-City database; empty: farmer locations are null")
	private := fs.String("private-listen", "127.0.0.1:8001", "address of the private listener (microservices register and fetch files there)")
	uploadDir := fs.String("upload-dir", "", "directory of uploaded files (default: uploads/ in --data-dir)")
	quoteTTL := fs.Duration("quote-ttl", 30*time.Minute, "how long an unpaid quote lasts")
	storageTTL := fs.Duration("storage-ttl", 10*time.Minute, "how long a microservice registration lasts without renewal")
	signers := fs.String("register-signers", "", "comma-separated Ethereum addresses allowed to register microservices")
	builtin := fs.String("builtin-type", "sluice", "name of the storage type backed by the farmer network")
	redundancy := fs.Int("upload-redundancy", 2, "farmers that must prove each chunk of an upload before it is done")
	uploadChunk := fs.Bytes("upload-chunk-size", 1<<20, "size uploads are cut into for farmers")
	retention := fs.Duration("upload-retention", time.Hour, "how long an uploaded file stays once no quote needs it (more than 0)")
	upRate := fs.String("upload-rate", "0", "built-in type price in token units per byte per second of storage, e.g. 1/1000 (0: free)")
	chainRPC := fs.String("chain-rpc", "", "Ethereum RPC URL for payments on the built-in type; empty: it is free")
	chainID := fs.Int("chain-id", 0, "the chain's id (0: ask the RPC node)")
	confirmations := fs.Int("chain-confirmations", 1, "blocks on top of a payment before it counts")
	chainTokens := fs.String("chain-tokens", "", "accepted ERC-20 tokens: SYMBOL:0xaddress,...")
	payeeKey := fs.String("payee-key-file", "", "file holding the payee account's private key in hex (the approveAddress)")
	gcHeadroom := fs.Bytes("gc-headroom", 256<<20, "least heap growth between two garbage collections (0: GOGC alone decides)")
	if err := fs.parseFlags(args); err != nil {
		return serveConfig{}, err
	}
	if fs.NArg() > 0 {
		// Flag parsing stops at the first word that is not a flag: the
		// flags after it would be dropped without a word.
		return serveConfig{}, fmt.Errorf("unexpected argument %q: serve takes flags only (flags after it were not read)", fs.Arg(0))
	}
	c := serveConfig{
		listen: *listen, databaseURL: *dbURL, dataDir: *dataDir, logLevel: *logLevel,
		requireSignature: *reqSig, interval: *interval, challenges: *challenges, chunkSizes: *sizes,
		chunksPerRequest: *perReq, maxPerAddress: *perAddr, defaultChunk: *defChunk, maxBody: *maxBody,
		leafSize: *leaf, leavesPerChall: *k, shutdownTimeout: *shutdown, requestTimeout: *reqTimeout, uploadIdle: *uploadIdle,
		downloadIdle: *downloadIdle, gcHeadroom: *gcHeadroom,
		maxTokensPerIP: *perIP, tokenBurst: *burst, quoteBurst: *qBurst, statusRefresh: *refresh, archiveRetention: *archive, ipHashSecret: *secret, whitelist: *wl, geoipDB: *geoipDB,
		privateListen: *private, uploadDir: *uploadDir, quoteTTL: *quoteTTL, storageTTL: *storageTTL,
		builtinType: *builtin, redundancy: *redundancy, uploadChunk: *uploadChunk, retention: *retention,
		chainRPC: *chainRPC, chainID: int64(*chainID), confirmations: *confirmations, payeeKeyFile: *payeeKey,
	}
	var errs []error
	var err error
	if c.trustedProxies, err = parsePrefixes(*proxies); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	if c.tokenRate, err = strconv.ParseFloat(*rate, 64); err != nil || math.IsNaN(c.tokenRate) || math.IsInf(c.tokenRate, 0) ||
		c.tokenRate < 0 || (c.tokenRate > 0 && c.tokenRate < minTokenRate) {
		errs = append(errs, fmt.Errorf("--token-rate %q: %s", *rate, rateWant))
	}
	if c.quoteRate, err = strconv.ParseFloat(*qRate, 64); err != nil || math.IsNaN(c.quoteRate) || math.IsInf(c.quoteRate, 0) ||
		c.quoteRate < 0 || (c.quoteRate > 0 && c.quoteRate < minTokenRate) {
		errs = append(errs, fmt.Errorf("--quote-rate %q: %s", *qRate, rateWant))
	}
	for _, a := range strings.Split(*signers, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !common.IsHexAddress(a) {
			errs = append(errs, fmt.Errorf("--register-signers: %q is not an Ethereum address", a))
			continue
		}
		c.registerSigners = append(c.registerSigners, common.HexToAddress(a))
	}
	for _, part := range strings.Split(*chainTokens, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		sym, addr, ok := strings.Cut(part, ":")
		if !ok || sym == "" || !common.IsHexAddress(addr) {
			errs = append(errs, fmt.Errorf("--chain-tokens: %q is not SYMBOL:0xaddress", part))
			continue
		}
		c.chainTokens = append(c.chainTokens, chain.Token{Symbol: sym, Address: common.HexToAddress(addr)})
	}
	if c.chainRPC != "" && (len(c.chainTokens) == 0 || c.payeeKeyFile == "") {
		errs = append(errs, errors.New("--chain-rpc needs --chain-tokens and --payee-key-file"))
	}
	if c.confirmations < 0 {
		errs = append(errs, errors.New("--chain-confirmations: want 0 or more"))
	}
	var okRate bool
	if c.uploadRate, okRate = new(big.Rat).SetString(*upRate); !okRate || c.uploadRate.Sign() < 0 {
		errs = append(errs, fmt.Errorf("--upload-rate %q: want a number ≥ 0 such as 0.001 or 1/1000", *upRate))
	}
	if c.uploadDir == "" {
		c.uploadDir = filepath.Join(c.dataDir, "uploads")
	}
	var ok bool
	if c.minBalance, ok = new(big.Int).SetString(*minBal, 10); !ok || c.minBalance.Sign() < 0 {
		errs = append(errs, fmt.Errorf("--whitelist-min-balance %q: want a whole number ≥ 0", *minBal))
	}
	return c, errors.Join(append(errs, fs.envErr(), c.validate())...)
}

func (c serveConfig) validate() error {
	var errs []error
	if c.interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--challenge-interval %s: want at least 100ms", c.interval))
	}
	if c.challenges < 0 {
		errs = append(errs, fmt.Errorf("--challenges-per-contract %d: want 0 or more", c.challenges))
	}
	for _, s := range c.chunkSizes {
		if s <= 0 || s > 1<<34 {
			errs = append(errs, fmt.Errorf("--chunk-sizes: %d is not between 1 byte and 16GiB", s))
		}
	}
	if c.chunksPerRequest < 0 {
		errs = append(errs, fmt.Errorf("--chunks-per-request %d: want 0 or more", c.chunksPerRequest))
	}
	if c.maxPerAddress <= 0 {
		errs = append(errs, errors.New("--max-bytes-per-address: want more than 0"))
	}
	if c.defaultChunk <= 0 {
		errs = append(errs, errors.New("--default-chunk-size: want more than 0"))
	}
	if c.maxBody < 1024 {
		errs = append(errs, errors.New("--max-body: want at least 1KiB"))
	}
	if err := (proof.Params{Scheme: proof.SchemeMerkleSegment, LeafSize: c.leafSize, LeavesPerChallenge: c.leavesPerChall}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--leaf-size/--leaves-per-challenge: %w", err))
	}
	if c.requestTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--request-timeout %s: want at least 100ms", c.requestTimeout))
	}
	if c.uploadIdle < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--upload-idle-timeout %s: want at least 100ms", c.uploadIdle))
	}
	if c.downloadIdle < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--download-idle-timeout %s: want at least 100ms", c.downloadIdle))
	}
	if c.maxTokensPerIP < 0 {
		errs = append(errs, errors.New("--max-tokens-per-ip: want 0 or more"))
	}
	if c.tokenBurst < 1 {
		errs = append(errs, errors.New("--token-burst: want at least 1"))
	}
	if c.quoteBurst < 1 {
		errs = append(errs, errors.New("--quote-burst: want at least 1"))
	}
	if c.archiveRetention < 0 || (c.archiveRetention > 0 && c.archiveRetention < time.Hour) {
		errs = append(errs, errors.New("--archive-retention: want 0 (keep for ever) or at least 1h (farmers ask about a closed contract for a while)"))
	}
	if c.statusRefresh < 100*time.Millisecond {
		errs = append(errs, errors.New("--status-refresh: want at least 100ms"))
	}
	if c.redundancy < 1 {
		errs = append(errs, errors.New("--upload-redundancy: want at least 1"))
	}
	if c.uploadChunk < 1024 || c.uploadChunk > 64<<20 {
		errs = append(errs, errors.New("--upload-chunk-size: want 1KiB to 64MiB"))
	}
	if c.quoteTTL < time.Second || c.storageTTL < time.Second {
		errs = append(errs, errors.New("--quote-ttl and --storage-ttl: want at least 1s"))
	}
	if c.databaseURL == "" && c.dataDir == "" {
		errs = append(errs, errors.New("set --database-url or --data-dir"))
	}
	if c.shutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %s: want more than 0", c.shutdownTimeout))
	}
	// An empty address would listen on every interface at a random port:
	// the private listener, open to any host.
	if strings.TrimSpace(c.listen) == "" || strings.TrimSpace(c.privateListen) == "" {
		errs = append(errs, errors.New("--listen and --private-listen: want host:port addresses, not empty"))
	} else {
		for _, l := range []struct{ flag, addr string }{{"--listen", c.listen}, {"--private-listen", c.privateListen}} {
			if err := checkListenAddr(l.addr); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", l.flag, l.addr, err))
			}
		}
	}
	if c.databaseURL != "" {
		// A file the settings name (a CA or client certificate, a service
		// file) that cannot be read is the node's failure to start, with
		// the file named, not a malformed flag. The parser's own message
		// could show the password, so it is not repeated here.
		if _, err := pgconn.ParseConfig(c.databaseURL); err != nil && !errors.As(err, new(*fs.PathError)) {
			errs = append(errs, errors.New("--database-url: not a PostgreSQL URL or key=value connection string"))
		}
	}
	if c.retention <= 0 {
		errs = append(errs, errors.New("--upload-retention: want more than 0"))
	}
	if c.chainID < 0 {
		errs = append(errs, errors.New("--chain-id: want 0 (ask the RPC node) or a chain id"))
	}
	if strings.TrimSpace(c.builtinType) == "" {
		errs = append(errs, errors.New("--builtin-type: want a name"))
	}
	return errors.Join(errs...)
}

// checkListenAddr refuses an address net.Listen could never use: no
// host:port form, or a port that is neither a number up to 65535 nor a
// service name.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	return nil
}

// store is what serve needs of either store.
type store interface {
	actors.Store
}

func openStore(ctx context.Context, c serveConfig, log *zap.Logger) (store, error) {
	if c.databaseURL != "" {
		// Long enough for a migration on a big table (each is logged as it
		// starts); an unreachable server fails sooner, on the store's
		// 5 s connect timeout.
		octx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		s, err := postgres.Open(octx, c.databaseURL, log)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		log.Info(eventStore, zap.String("kind", "postgres"))
		return s, nil
	}
	s, err := embedded.Open(c.dataDir, log)
	if err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	log.Info(eventStore, zap.String("kind", "embedded"), zap.String("path", s.Path()))
	return s, nil
}

// flushers is how many snapshot batches are in flight at once: bbolt has
// one writer, so a second flusher would only wait for its lock.
func flushers(c serveConfig) int {
	if c.databaseURL == "" {
		return 1
	}
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseServe(args, stderr)
	if err != nil {
		return badUsage(err)
	}
	log, err := newLogger(c.logLevel, stderr)
	if err != nil {
		return badUsage(err)
	}
	defer log.Sync()
	// A small node under heavy answer load would otherwise collect many
	// times a second (internal/gcheadroom).
	defer gcheadroom.Start(uint64(c.gcHeadroom)).Stop()
	m := metrics.New()

	st, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	writer := persistence.NewWriter(st, persistence.WriterOptions{Observe: m.ObserveBatch, Flushers: flushers(c)})
	defer writer.Close()

	var locator actors.Locator
	if c.geoipDB == "" {
		log.Warn(eventGeoIP, zap.String("detail", "no GeoIP database configured (--geoip-db): farmer locations will be null"))
	} else {
		db, err := geo.Open(c.geoipDB)
		if err != nil {
			return fmt.Errorf("--geoip-db: %w", err)
		}
		defer db.Close()
		locator = db
	}

	blobs, err := blobstore.Open(c.uploadDir)
	if err != nil {
		return fmt.Errorf("open the upload directory: %w", err)
	}
	defer blobs.Close()
	blobAdapter := sluiceblobs.Adapter{Store: blobs}
	registry, err := microservice.NewRegistry(ctx, st, microservice.RegistryConfig{
		TTL: c.storageTTL, Allowed: c.registerSigners, Reserved: []string{c.builtinType}, Log: log})
	if err != nil {
		return err
	}
	defer registry.Close()
	var pay actors.Payments
	var accepted []microservice.PaymentOption
	if c.chainRPC != "" {
		payer, err := dialChain(ctx, c)
		if err != nil {
			return err
		}
		defer payer.Close()
		pay = payments.New(payer)
		accepted = acceptedTokens(c, payer.ChainID())
		log.Info(eventChain, zap.Int64("chain_id", payer.ChainID()), zap.String("payee", payer.Payee().Hex()))
	}
	if len(c.registerSigners) == 0 {
		log.Warn(eventRegistry, zap.String("detail", "no --register-signers: no microservice can register"))
	}

	// Listen first, so health checks answer while the engine recovers.
	srv := sluicehttp.New(sluicehttp.Config{
		RequireSignature:    c.requireSignature,
		DefaultChunkSize:    c.defaultChunk,
		MaxBody:             c.maxBody,
		RequestTimeout:      c.requestTimeout,
		UploadIdleTimeout:   c.uploadIdle,
		DownloadIdleTimeout: c.downloadIdle,
		TrustedProxies:      c.trustedProxies,
		QuoteRate:           c.quoteRate,
		QuoteBurst:          c.quoteBurst,
		Blobs:               blobAdapter,
		BlobHandler:         blobs.Handler("/ipfs/"),
	}, m, log)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	hs := publicServer(srv, c.requestTimeout)
	pln, err := net.Listen("tcp", c.privateListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen on %s (private): %w", c.privateListen, err)
	}
	phs := &http.Server{Handler: srv.Private(registry), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: sluicehttp.MaxHeaderBytes}
	serveErr := make(chan error, 2)
	// The wrapped listeners answer net/http's own errors (oversized headers,
	// unparsable requests) in each API's JSON error format.
	pub, priv := sluicehttp.JSONErrors(hs, ln, true), sluicehttp.JSONErrors(phs, pln, false)
	go func() { serveErr <- hs.Serve(pub) }()
	go func() { serveErr <- phs.Serve(priv) }()
	log.Info(eventListening, zap.String("addr", ln.Addr().String()), zap.String("private_addr", pln.Addr().String()))

	engine, err := actors.Start(ctx, actors.Config{
		Terms:               sluice.Terms{Interval: c.interval, Challenges: c.challenges},
		Scheme:              proof.MerkleSegment(proof.Params{Scheme: proof.SchemeMerkleSegment, LeafSize: c.leafSize, LeavesPerChallenge: c.leavesPerChall}),
		ChunkSizes:          c.chunkSizes,
		MaxChunksPerRequest: c.chunksPerRequest,
		MaxBytesPerAddress:  c.maxPerAddress,
		MaxTokensPerIP:      c.maxTokensPerIP,
		TokenRate:           c.tokenRate,
		TokenBurst:          c.tokenBurst,
		StatusRefresh:       c.statusRefresh,
		ArchiveRetention:    c.archiveRetention,
		IPHashKey:           []byte(c.ipHashSecret),
		Whitelist:           c.whitelist,
		MinBalance:          c.minBalance,
		Locator:             locator,
		Uploads: actors.UploadConfig{
			QuoteTTL: c.quoteTTL, Builtin: c.builtinType, Rate: c.uploadRate, Redundancy: c.redundancy,
			ChunkSize: c.uploadChunk, Blobs: blobAdapter, Registry: registry, Payments: pay,
			Accepted: accepted, Retention: c.retention,
			Client: &microservice.Client{Timeout: 30 * time.Second},
		},
	}, st, writer, m, log)
	if err != nil {
		_ = hs.Close()
		_ = phs.Close()
		return fmt.Errorf("start engine: %w", err)
	}
	srv.SetFarmers(engine)
	log.Info(eventReady)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		engine.Stop()
		return fmt.Errorf("http server: %w", err)
	}

	// Graceful stop: refuse new work, let requests in flight finish, stop
	// the actors, then flush every snapshot they handed to the writer.
	log.Info(eventStopping)
	srv.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn(eventStopping, zap.Error(err))
	}
	if err := phs.Shutdown(sctx); err != nil {
		log.Warn(eventStopping, zap.Error(err))
	}
	engine.Stop()
	if err := writer.Close(); err != nil {
		return fmt.Errorf("flush snapshots: %w", err)
	}
	log.Info(eventStopped)
	return nil
}

// publicServer is the public listener's server. Its ReadTimeout is the
// request timeout (--request-timeout), set by net/http at the start of
// each request in the deadline calls it makes anyway; uploads replace it
// with a deadline that moves with the data (--upload-idle-timeout), so
// that a slow but steady upload is never cut. (Without a ReadTimeout the
// handler sets the same deadline itself, one more timer change a
// request.) ReadHeaderTimeout bounds the headers. WriteTimeout bounds every reply but two kinds, which lift it
// for themselves: uploads (a few bytes, written once the body is in) and
// files served under /ipfs/, whose write deadline moves forward with each
// write instead (--download-idle-timeout, 30 s by default), so that a large
// file to a slow client is not cut while its bytes keep going.
func publicServer(h http.Handler, requestTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadTimeout:       requestTimeout,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    sluicehttp.MaxHeaderBytes,
	}
}

// parsePrefixes reads a comma-separated list of addresses and CIDRs.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// dialChain connects the payer of the configured chain.
func dialChain(ctx context.Context, c serveConfig) (*chain.Payer, error) {
	raw, err := os.ReadFile(c.payeeKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--payee-key-file: %w", err)
	}
	key, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(string(raw)), "0x"))
	if err != nil {
		return nil, fmt.Errorf("--payee-key-file: not a hex private key: %w", err)
	}
	id := c.chainID
	if id == 0 {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		cl, err := ethclient.DialContext(dctx, c.chainRPC)
		if err != nil {
			return nil, fmt.Errorf("--chain-rpc: %w", err)
		}
		n, err := cl.ChainID(dctx)
		cl.Close()
		if err != nil {
			return nil, fmt.Errorf("--chain-rpc: read the chain id: %w", err)
		}
		id = n.Int64()
	}
	return chain.Dial(ctx, chain.ChainConfig{ChainID: id, RPCURL: c.chainRPC, Confirmations: uint64(c.confirmations),
		Tokens: c.chainTokens, PayeeKey: key})
}

// acceptedTokens is the built-in type's payment option for GET /.
func acceptedTokens(c serveConfig, chainID int64) []microservice.PaymentOption {
	opt := microservice.PaymentOption{ChainID: strconv.FormatInt(chainID, 10)}
	for _, t := range c.chainTokens {
		opt.AcceptedTokens = append(opt.AcceptedTokens, microservice.Token{Title: t.Symbol, Value: t.Address.Hex()})
	}
	return []microservice.PaymentOption{opt}
}
