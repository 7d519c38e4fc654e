package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/blobstore"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/blobs"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/persistence/embedded"
)

// uploaderNode runs a node (embedded store) with its HTTP API and a
// baseline handler on one loopback listener. The engine is returned too,
// so the benchmark can see when an upload's files are sealed.
func uploaderNode(dir string) (base string, e *actors.Engine, stop func(), err error) {
	ctx := context.Background()
	store, err := embedded.Open(filepath.Join(dir, "db"), zap.NewNop())
	if err != nil {
		return "", nil, nil, err
	}
	bs, err := blobstore.Open(filepath.Join(dir, "uploads"))
	if err != nil {
		return "", nil, nil, err
	}
	ad := blobs.Adapter{Store: bs}
	m := metrics.New()
	w := persistence.NewWriter(store, persistence.WriterOptions{Flushers: 1})
	e, err = actors.Start(ctx, actors.Config{Uploads: actors.UploadConfig{Blobs: ad}}, store, w, m, zap.NewNop())
	if err != nil {
		return "", nil, nil, err
	}
	srv := sluicehttp.New(sluicehttp.Config{Blobs: ad, BlobHandler: bs.Handler("/ipfs/")}, m, zap.NewNop())
	srv.SetFarmers(e)
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("/baseline", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		w.Write([]byte(`{"quoteId":"00000000000000000000000000000000","tokenAmount":"0","approveAddress":"0x0000000000000000000000000000000000000000","chainId":"1","tokenAddress":"0x0000000000000000000000000000000000000000"}`))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), e, func() { hs.Close(); e.Stop(); w.Close(); bs.Close(); store.Close() }, nil
}

type uploadResult struct {
	QuotesPerSec   float64 `json:"quotes_per_s"`
	BaselinePerSec float64 `json:"baseline_per_s"`
	QuoteRatio     float64 `json:"quote_ratio"`
	// UploadMBps is the upload request, from its start to the
	// acknowledgement ("File upload succeeded."): the file is on disk,
	// fsynced, and the quote names it, not yet hashed (decision 0005).
	UploadMBps  float64 `json:"upload_mb_per_s"`
	DiskMBps    float64 `json:"disk_write_mb_per_s"`
	UploadRatio float64 `json:"upload_ratio"`
	// SealedSeconds is from the upload request's start until the quote
	// has recorded the file's CID (hashed after the acknowledgement);
	// SealedMBps and SealedRatio are the same bytes over that time.
	// SealAfterAckSeconds is the part after the acknowledgement.
	SealedSeconds       float64 `json:"sealed_s"`
	SealAfterAckSeconds float64 `json:"seal_after_ack_s"`
	SealedMBps          float64 `json:"sealed_mb_per_s"`
	SealedRatio         float64 `json:"sealed_ratio"`
	// SHA256MBps is one goroutine hashing the same bytes with
	// crypto/sha256: the CID needs every byte hashed in order, so the
	// sealed figure cannot be better than this. UploadVsSHA256 and
	// SealedVsSHA256 compare with it.
	SHA256MBps     float64 `json:"sha256_mb_per_s"`
	UploadVsSHA256 float64 `json:"upload_vs_sha256"`
	SealedVsSHA256 float64 `json:"sealed_vs_sha256"`
	UploadBytes    int64   `json:"upload_bytes"`
	// The heap is sampled from the upload's start until the file is
	// sealed.
	PeakHeapDuringMiB  float64 `json:"peak_heap_during_upload_mib"`
	HeapBeforeMiB      float64 `json:"heap_before_upload_mib"`
	HeapAfterMiB       float64 `json:"heap_after_upload_mib"`
	PeakRSSIncreaseMiB float64 `json:"peak_rss_increase_mib"`
	// CPU seconds the process used (user and system, all threads) while
	// writing the baseline and while uploading until sealed: on a busy
	// machine they vary less than the rates.
	DiskCPUSeconds   float64 `json:"disk_write_cpu_s"`
	UploadCPUSeconds float64 `json:"upload_cpu_s"`
}

// heapInuse returns the bytes in in-use heap spans, as
// runtime.MemStats.HeapInuse, read without stopping the world.
func heapInuse() uint64 {
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	rtmetrics.Read(sample)
	return sample[0].Value.Uint64() + sample[1].Value.Uint64()
}

// cpuSeconds returns the user and system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func uploadsBench(args []string) error {
	fs := flag.NewFlagSet("uploads", flag.ExitOnError)
	quotes := fs.Int("quotes", 5000, "quotes to create (and baseline requests)")
	size := fs.Int64("size", 256<<20, "bytes of the uploaded file")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the upload (client and server) here")
	fs.Parse(args)
	dir, err := os.MkdirTemp("", "sluice-bench-uploads")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, engine, stop, err := uploaderNode(dir)
	if err != nil {
		return err
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Minute}
	key, _ := crypto.GenerateKey()
	user := crypto.PubkeyToAddress(key.PublicKey).Hex()
	quoteBody := func(n int64) []byte {
		b, _ := json.Marshal(map[string]any{"type": "sluice", "files": []any{map[string]int64{"length": n}}, "duration": 3600,
			"payment": map[string]any{"chainId": "1"}, "userAddress": user})
		return b
	}
	run := func(path string) (float64, error) {
		var next atomic.Int64
		var failed atomic.Value
		var wg sync.WaitGroup
		body := quoteBody(1000)
		start := time.Now()
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(*quotes) {
					res, err := client.Post(base+path, "application/json", bytes.NewReader(body))
					if err != nil {
						failed.Store(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 201 {
						failed.Store(fmt.Errorf("%s: %d", path, res.StatusCode))
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			return 0, err
		}
		return float64(*quotes) / time.Since(start).Seconds(), nil
	}
	var res uploadResult
	if res.BaselinePerSec, err = run("/baseline"); err != nil {
		return err
	}
	if res.QuotesPerSec, err = run("/getQuote"); err != nil {
		return err
	}
	res.QuoteRatio = res.QuotesPerSec / res.BaselinePerSec

	// Baseline: the same bytes written to a file and fsync'd.
	cpu := cpuSeconds()
	start := time.Now()
	f, err := os.Create(filepath.Join(dir, "baseline"))
	if err != nil {
		return err
	}
	io.CopyBuffer(f, io.LimitReader(&pattern{}, *size), make([]byte, 256<<10))
	f.Sync()
	f.Close()
	res.DiskMBps = float64(*size) / 1e6 / time.Since(start).Seconds()
	res.DiskCPUSeconds = cpuSeconds() - cpu

	// The ceiling: the same bytes through SHA-256 alone.
	start = time.Now()
	io.CopyBuffer(sha256.New(), io.LimitReader(&pattern{}, *size), make([]byte, 256<<10))
	res.SHA256MBps = float64(*size) / 1e6 / time.Since(start).Seconds()
	os.Remove(filepath.Join(dir, "baseline"))

	// The upload: a quote, then the file streamed as multipart.
	qres, err := client.Post(base+"/getQuote", "application/json", bytes.NewReader(quoteBody(*size)))
	if err != nil {
		return err
	}
	var q struct{ QuoteID string }
	json.NewDecoder(qres.Body).Decode(&q)
	qres.Body.Close()
	nonce := strconv.FormatInt(time.Now().Unix(), 10)
	sig := signOcean(key, q.QuoteID, nonce)
	// The body is a multipart head, the file and a multipart tail, its
	// length known up front as a browser's FormData would send it. The
	// file comes from pattern without an io.Pipe or a goroutine in between:
	// the client shares the machine's cores with the server, so it should
	// cost little more than the copy into the socket.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	if _, err := mw.CreateFormFile("file1", "big.bin"); err != nil {
		return err
	}
	headLen := form.Len()
	if err := mw.Close(); err != nil {
		return err
	}
	head, tail := form.Bytes()[:headLen], form.Bytes()[headLen:]
	body := io.MultiReader(bytes.NewReader(head), io.LimitReader(&pattern{}, *size), bytes.NewReader(tail))
	contentLength := int64(len(head)) + *size + int64(len(tail))
	req, err := http.NewRequest(http.MethodPost, base+"/upload?"+url.Values{"quoteId": {q.QuoteID}, "nonce": {nonce}, "signature": {sig}}.Encode(), body)
	if err != nil {
		return err
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", mw.FormDataContentType())
	runtime.GC()
	res.HeapBeforeMiB = float64(heapInuse()) / (1 << 20)
	rssBefore := rssMiB()
	var peak, peakRSS atomic.Uint64
	sampling := make(chan struct{})
	go func() {
		for {
			select {
			case <-sampling:
				return
			case <-time.After(5 * time.Millisecond):
				if h := heapInuse(); h > peak.Load() {
					peak.Store(h)
				}
				if r := uint64(rssMiB() * (1 << 20)); r > peakRSS.Load() {
					peakRSS.Store(r)
				}
			}
		}
	}()
	if *profile != "" {
		pf, err := os.Create(*profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pf.Close()
	}
	cpu = cpuSeconds()
	start = time.Now()
	ures, err := client.Do(req)
	took := time.Since(start)
	if err != nil {
		close(sampling)
		return err
	}
	msg, _ := io.ReadAll(ures.Body)
	ures.Body.Close()
	if ures.StatusCode != 200 {
		close(sampling)
		return fmt.Errorf("upload: %d %s", ures.StatusCode, msg)
	}
	// Then until the quote has the file's CID: polled in the process, a
	// look at the actor's state every millisecond.
	for {
		qt, err := engine.Quote(context.Background(), q.QuoteID)
		if err != nil {
			close(sampling)
			return err
		}
		if sluice.QuoteFinal(qt.Status) {
			close(sampling)
			return fmt.Errorf("upload: the quote ended at status %d before its file was sealed", qt.Status)
		}
		if len(qt.Files) > 0 && qt.Sealed() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	sealed := time.Since(start)
	res.UploadCPUSeconds = cpuSeconds() - cpu
	if *profile != "" {
		pprof.StopCPUProfile()
	}
	close(sampling)
	res.HeapAfterMiB = float64(heapInuse()) / (1 << 20)
	res.UploadBytes = *size
	res.UploadMBps = float64(*size) / 1e6 / took.Seconds()
	res.UploadRatio = res.UploadMBps / res.DiskMBps
	res.UploadVsSHA256 = res.UploadMBps / res.SHA256MBps
	res.SealedSeconds = sealed.Seconds()
	res.SealAfterAckSeconds = (sealed - took).Seconds()
	res.SealedMBps = float64(*size) / 1e6 / sealed.Seconds()
	res.SealedRatio = res.SealedMBps / res.DiskMBps
	res.SealedVsSHA256 = res.SealedMBps / res.SHA256MBps
	res.PeakHeapDuringMiB = float64(peak.Load()) / (1 << 20)
	res.PeakRSSIncreaseMiB = float64(peakRSS.Load())/(1<<20) - rssBefore
	return json.NewEncoder(os.Stdout).Encode(res)
}

// pattern is an endless stream repeating one random 1 MiB block: cheap
// to make, so the benchmark measures the server, not the generator.
type pattern struct{ off int }

var block = func() []byte {
	b := make([]byte, 1<<20)
	rand.Read(b)
	return b
}()

func (p *pattern) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k := copy(b[n:], block[p.off:])
		n += k
		p.off = (p.off + k) % len(block)
	}
	return n, nil
}

func signOcean(key *ecdsa.PrivateKey, quoteID, nonce string) string {
	s, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(quoteID, nonce))), key)
	s[64] += 27
	return "0x" + hex.EncodeToString(s)
}
