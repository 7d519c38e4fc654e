package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The node under benchmark as a child process, and what the benchmarks
// read of it and of the machine: /proc, /metrics, clean-ups on exit.

// sluiceBinary finds the node binary: the flag, else sluice next to this
// program.
func sluiceBinary(flagged string) (string, error) {
	if flagged != "" {
		return filepath.Abs(flagged)
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(self), "sluice")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("no sluice binary next to sluice-bench: go build -o DIR/sluice ./cmd/sluice, or pass --sluice")
	}
	return p, nil
}

// nodeSetup is what the answer and fleet benchmarks start their node
// from: the binary, a temporary directory, and the flags of a node on a
// store of its own (a fresh Postgres schema, or the embedded store in the
// directory) with no limit shaping the load.
type nodeSetup struct {
	bin       string
	dir       string
	schemaURL string // the fresh schema's URL; empty on the embedded store
	args      []string
	cleanup   []func()
}

func newNodeSetup(ctx context.Context, flaggedBin, dbURL, name string, interval time.Duration, chunkSize int64) (*nodeSetup, error) {
	bin, err := sluiceBinary(flaggedBin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sluice-bench-"+name)
	if err != nil {
		return nil, err
	}
	s := &nodeSetup{bin: bin, dir: dir, cleanup: []func(){atExit(func() { os.RemoveAll(dir) })}}
	size := strconv.FormatInt(chunkSize, 10)
	s.args = []string{"--data-dir", filepath.Join(dir, "data"),
		"--challenge-interval", interval.String(), "--chunk-sizes", size,
		"--default-chunk-size", size, "--chunks-per-request", "0",
		"--max-tokens-per-ip", "0", "--token-rate", "0", "--quote-rate", "0", "--challenges-per-contract", "0"}
	if dbURL != "" {
		u, drop, err := freshSchema(ctx, dbURL)
		if err != nil {
			s.close()
			return nil, err
		}
		s.cleanup = append(s.cleanup, atExit(drop))
		s.schemaURL = u
		s.args = append(s.args, "--database-url", u)
	}
	return s, nil
}

// store names the node's store for the results.
func (s *nodeSetup) store() string {
	if s.schemaURL != "" {
		return "postgres"
	}
	return "embedded"
}

// start runs a node with its log in the directory; see startNode.
func (s *nodeSetup) start(logName, addr string) (*nodeProc, error) {
	return startNode(s.bin, s.args, filepath.Join(s.dir, logName), addr)
}

// close drops the schema and removes the directory.
func (s *nodeSetup) close() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}

// nodeProc is `sluice serve` as a child process, so it can be killed.
type nodeProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	mu   sync.Mutex
	warn map[string]int // warn and error log events by name
}

// startNode runs `sluice serve args` with its log in logPath. With addr
// empty the node listens on a free loopback port, learned from its log;
// otherwise on addr. It returns once the process listens (or, with addr
// given, once it has started: the caller polls /readyz).
func startNode(bin string, args []string, logPath, addr string) (*nodeProc, error) {
	listen := addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	args = append([]string{"serve", "--listen", listen, "--private-listen", "127.0.0.1:0"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	// The node dies with the benchmark, however the benchmark ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	n := &nodeProc{cmd: cmd, addr: addr, done: make(chan struct{}), warn: map[string]int{}}
	listening := make(chan string, 1)
	go func() {
		defer close(n.done)
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logf.Write(append(line, '\n'))
			var ev struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
				Addr  string `json:"addr"`
			}
			if json.Unmarshal(line, &ev) != nil {
				continue
			}
			if ev.Msg == "node.listening" {
				select {
				case listening <- ev.Addr:
				default:
				}
			}
			if ev.Level != "info" && ev.Level != "debug" && ev.Msg != "node.geoip" && ev.Msg != "node.registry" {
				n.mu.Lock()
				n.warn[ev.Level+" "+ev.Msg]++
				n.mu.Unlock()
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	if addr != "" {
		return n, nil
	}
	select {
	case n.addr = <-listening:
		return n, nil
	case <-n.done:
		return nil, fmt.Errorf("the node exited before listening; its log: %s", logPath)
	case <-time.After(2 * time.Minute):
		n.kill()
		return nil, errors.New("the node did not listen within 2 minutes")
	}
}

func (n *nodeProc) url() string { return "http://" + n.addr }

func (n *nodeProc) pid() int { return n.cmd.Process.Pid }

func (n *nodeProc) warnings() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.warn)
}

// waitReady polls /readyz until it answers 200.
func (n *nodeProc) waitReady(limit time.Duration) error {
	_, err := pollReady(n.url(), n.done, limit)
	return err
}

// pollReady asks url/readyz every 10 ms until it answers 200 and returns
// when it did.
func pollReady(url string, exited <-chan struct{}, limit time.Duration) (time.Time, error) {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r, err := c.Get(url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		select {
		case <-exited:
			return time.Time{}, errors.New("the node exited before it was ready")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return time.Time{}, fmt.Errorf("the node was not ready after %s", limit)
}

// kill ends the node with SIGKILL, as a crash would, and waits for it.
func (n *nodeProc) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// stop ends the node with SIGTERM, then SIGKILL after a minute.
func (n *nodeProc) stop() {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(time.Minute):
		n.kill()
	}
}

// benchClient is the one pooled client of every timed phase, for the node
// and the baseline alike.
func benchClient(conns int) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}}
}

// cpuTicksOr0 is cpuTicks, or 0 when /proc cannot be read.
func cpuTicksOr0(pid int) int64 {
	t, _ := cpuTicks(pid)
	return t
}

// loadAverage is the machine's 1-minute load average: the figures of a
// run are comparable only with others taken on an equally quiet machine.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Clean-ups that must also run when the benchmark is interrupted: the
// node's temporary directory and the Postgres schema. (The child processes
// die with the benchmark through Pdeathsig.)
var (
	exitMu    sync.Mutex
	exitFuncs []func()
)

// atExit registers f to run, last registered first, when the subcommand
// returns or the benchmark is interrupted; the returned func runs f now
// instead (once).
func atExit(f func()) func() {
	once := sync.OnceFunc(f)
	exitMu.Lock()
	exitFuncs = append(exitFuncs, once)
	exitMu.Unlock()
	return once
}

// runExits runs the registered clean-ups.
func runExits() {
	exitMu.Lock()
	fs := exitFuncs
	exitFuncs = nil
	exitMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// commitBuckets reads the node's histogram of snapshot commit times:
// cumulative counts by upper bound ("0.05", "+Inf").
func commitBuckets(base string) (map[string]float64, error) {
	text, err := scrapeMetrics(base)
	if err != nil {
		return nil, err
	}
	return histogram(text, "sluice_snapshot_commit_seconds"), nil
}

// batchRows reads the node's histogram of records per committed batch:
// its sum and its count.
func batchRows(base string) (rows, commits float64, err error) {
	text, err := scrapeMetrics(base)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "sluice_snapshot_batch_rows_sum "); ok {
			rows, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if v, ok := strings.CutPrefix(line, "sluice_snapshot_batch_rows_count "); ok {
			commits, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return rows, commits, nil
}

// histogram reads the buckets of one unlabelled Prometheus histogram from
// the text format: cumulative counts by their "le" bound.
func histogram(text, name string) map[string]float64 {
	out := map[string]float64{}
	prefix := name + `_bucket{le="`
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		le, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[le] = v
		}
	}
	return out
}

// saveMetrics writes the node's /metrics page to path.
func saveMetrics(base, path string) error {
	text, err := scrapeMetrics(base)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// procMiB reads a size field such as VmRSS from /proc/PID/status.
func procMiB(pid int, field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			fs := strings.Fields(v)
			kb, err := strconv.ParseFloat(fs[0], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuTicks is the process's user and system time in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

// parseStatTicks reads utime + stime from a /proc/PID/stat line: fields
// 14 and 15, counted after the command name, which may hold spaces.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat line")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat line")
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat line")
	}
	return u + s, nil
}

// waitIdle scrapes the node's metrics every 20 ms until go_goroutines is
// at most max, and returns when it was.
func waitIdle(base string, max int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		m, err := nodeMetrics(base)
		if err != nil {
			return time.Time{}, err
		}
		if int(m["go_goroutines"]) <= max {
			return time.Now(), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("the node still ran more than %d goroutines after %s", max, limit)
}

// nodeMetrics reads the node's unlabelled Prometheus gauges and counters.
func nodeMetrics(base string) (map[string]float64, error) {
	text, err := scrapeMetrics(base)
	if err != nil {
		return nil, err
	}
	return parseMetrics(text), nil
}

// scrapeMetrics fetches the node's /metrics page.
func scrapeMetrics(base string) (string, error) {
	r, err := http.Get(base + "/metrics")
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

// parseMetrics reads "name value" lines of the Prometheus text format;
// labelled series and comments are skipped.
func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}
