package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/persistence/postgres/pgtest"
	"github.com/sluicehq/sluice/proof"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the real sluice command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is a running sluice serve.
type process struct {
	cmd  *exec.Cmd
	api  string
	logs *bytes.Buffer
}

// uploadDir is one upload directory per test, shared by its restarts.
var uploadDirs sync.Map

func uploadDir(t *testing.T) string {
	d, _ := uploadDirs.LoadOrStore(t.Name(), t.TempDir())
	return d.(string)
}

// startServe runs the binary and waits (bounded) until it says it is ready.
func startServe(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--private-listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "SLUICE_UPLOAD_DIR="+uploadDir(t)), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &bytes.Buffer{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		addr := ""
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			var ev struct{ Msg, Addr string }
			json.Unmarshal([]byte(line), &ev)
			switch ev.Msg {
			case "node.listening":
				addr = ev.Addr
			case "node.ready":
				ready <- addr
			}
		}
		close(ready)
	}()
	select {
	case addr, ok := <-ready:
		if !ok {
			t.Fatalf("sluice exited before it was ready:\n%s", p.logs)
		}
		p.api = "http://" + addr + "/api/downstream/v1"
	case <-time.After(60 * time.Second):
		t.Fatalf("sluice not ready after 60s:\n%s", p.logs)
	}
	return p
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

type wireChunk struct {
	FileHash  string          `json:"file_hash"`
	Size      int64           `json:"size"`
	Seed      string          `json:"seed"`
	Challenge proof.Challenge `json:"challenge"`
	Tag       proof.Tag       `json:"tag"`
}

type wireChallenge struct {
	FileHash  string          `json:"file_hash"`
	Challenge proof.Challenge `json:"challenge"`
	Due       float64         `json:"due"`
	Answered  bool            `json:"answered"`
	Error     string          `json:"error"`
	Status    string          `json:"status"`
}

func proveWire(t *testing.T, c wireChunk, ch proof.Challenge) json.RawMessage {
	data := proof.NewSeeded(c.Seed, c.Size)
	tree, err := proof.BuildTree(data, c.Size, c.Tag.LeafSize)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tree.Prove(data, ch)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	return b
}

// TestCrashRecovery answers challenges on the real binary, kills it with
// SIGKILL (no shutdown at all), starts it again on the same store and
// checks that every acknowledged answer survived and deadlines still fire.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	stores := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"embedded", func(t *testing.T) []string { return []string{"SLUICE_DATA_DIR=" + t.TempDir()} }},
		{"postgres", func(t *testing.T) []string { return []string{"SLUICE_DATABASE_URL=" + pgtest.DSN(t)} }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			env := append(st.env(t), "SLUICE_CHALLENGE_INTERVAL=6s", "SLUICE_LOG_LEVEL=info")
			p := startServe(t, env)
			var tok struct{ Token string }
			nodetest.Call(t, "GET", p.api+"/new/0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", nil, &tok)
			var got struct{ Chunks []wireChunk }
			nodetest.Call(t, "GET", fmt.Sprintf("%s/chunk/%s/%d", p.api, tok.Token, 6*32768), nil, &got)
			if len(got.Chunks) != 6 {
				t.Fatalf("got %d chunks, want 6", len(got.Chunks))
			}
			answered := map[string]bool{}
			var proofs []map[string]any
			for _, c := range got.Chunks[:4] {
				proofs = append(proofs, map[string]any{"file_hash": c.FileHash, "proof": proveWire(t, c, c.Challenge)})
			}
			var rep struct {
				Report []struct {
					FileHash string `json:"file_hash"`
					Status   string `json:"status"`
					Error    string `json:"error"`
				} `json:"report"`
			}
			nodetest.Call(t, "POST", p.api+"/answer/"+tok.Token, map[string]any{"proofs": proofs}, &rep)
			if len(rep.Report) != 4 {
				t.Fatalf("report: %+v, want 4 items", rep.Report)
			}
			for _, r := range rep.Report {
				if r.Status != "ok" {
					t.Fatalf("answer %s: %s", r.FileHash, r.Error)
				}
				answered[r.FileHash] = true // acknowledged: must survive the crash
			}
			p.kill(t)

			first := p.logs.String()
			p = startServe(t, env)
			original := map[string]wireChunk{}
			for _, c := range got.Chunks {
				original[c.FileHash] = c
			}
			var all struct{ Challenges []wireChallenge }
			nodetest.Call(t, "GET", p.api+"/challenge/"+tok.Token, nil, &all)
			if len(all.Challenges) != 6 {
				t.Fatalf("after restart: %d live contracts, want 6:\n%s", len(all.Challenges), p.logs)
			}
			for _, c := range all.Challenges {
				if c.Error != "" {
					t.Fatalf("after restart %s: %s", c.FileHash, c.Error)
				}
				// Still on its first challenge (an unanswered contract never
				// gets a new one without expiring): it must show the answer.
				if answered[c.FileHash] && c.Challenge.Seed == original[c.FileHash].Challenge.Seed && !c.Answered {
					t.Fatalf("acknowledged answer for %s lost across SIGKILL\nfirst run:\n%s\nsecond run:\n%s", c.FileHash, first, p.logs)
				}
			}
			// Deadlines still fire: wait (bounded) until the two unanswered
			// contracts have expired and each answered one has been issued
			// its next challenge (seen at least once, in any poll).
			hashes := []string{}
			for _, c := range got.Chunks {
				hashes = append(hashes, c.FileHash)
			}
			expired, next := map[string]bool{}, map[string]bool{}
			deadline := time.Now().Add(60 * time.Second)
			for len(expired) < 2 || len(next) < 4 {
				var now struct{ Challenges []wireChallenge }
				nodetest.Call(t, "POST", p.api+"/challenge/"+tok.Token, map[string]any{"hashes": hashes}, &now)
				for _, c := range now.Challenges {
					switch {
					case answered[c.FileHash] && c.Error == "" && c.Challenge.Seed != original[c.FileHash].Challenge.Seed:
						next[c.FileHash] = true
					case answered[c.FileHash] && c.Error != "" && !next[c.FileHash]:
						t.Fatalf("answered contract %s: %s before its next challenge was issued\n%s", c.FileHash, c.Error, p.logs)
					case !answered[c.FileHash] && c.Error == "contract expired":
						expired[c.FileHash] = true
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("deadlines did not fire after restart: expired %d of 2, next challenge %d of 4: %+v\n%s", len(expired), len(next), now.Challenges, p.logs)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(p.logs.String(), `"contracts":6`) {
				t.Fatalf("recovery did not load the 6 contracts:\n%s", p.logs)
			}
		})
	}
}
