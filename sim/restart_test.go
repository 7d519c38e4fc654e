package sim_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sim"
)

// lockedBuffer collects the node's log lines from the reader goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// buildSluice builds the real sluice command into a temporary directory.
func buildSluice(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sluicehq/sluice/cmd/sluice").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRestartLedger runs the restart scenario, shortened, against the real
// binary: the node is killed with SIGKILL midway and started again on the
// same store. Every acknowledged answer and completed upload must survive,
// and no contract may expire for a due time that fell while it was down.
func TestRestartLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the sluice binary")
	}
	t.Parallel()
	logs := &lockedBuffer{}
	p := &sim.Process{
		Path: buildSluice(t),
		Args: []string{"--listen", "127.0.0.1:0", "--private-listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--challenge-interval", "1s", "--max-tokens-per-ip", "0", "--token-rate", "0", "--quote-rate", "0",
			"--upload-chunk-size", "64KiB", "--upload-redundancy", "2"},
		Env: []string{"SLUICE_DATABASE_URL="}, // the embedded store, whatever the environment says
		Log: logs,
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Cleanup(func() { p.Stop(10 * time.Second) })

	sc, err := sim.BuiltinScenario("restart")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = sim.Duration(10 * time.Second)
	sc.Restart.At = sim.Duration(4 * time.Second)
	sc.Restart.Down = sim.Duration(2500 * time.Millisecond) // two and a half intervals
	sc.IntervalHint = sim.Duration(time.Second)
	sc.UploadChunkSize = 64 << 10
	sc.UploadReserve = 64 << 10 // the upload completes before the kill
	sc.Farmers = []sim.FarmerGroup{
		{Kind: sim.Honest, Count: 6, Size: 128 << 10},
		{Kind: sim.Lossy, Count: 2, Size: 128 << 10, Lost: 0.25},
		{Kind: sim.Cheater, Count: 1, Size: 64 << 10},
		{Kind: sim.Late, Count: 1, Size: 64 << 10, Late: 0.5},
	}
	sc.Uploaders = []sim.UploaderGroup{{Count: 1, Uploads: 1, Sizes: []sim.Size{100 << 10}}}

	rep, err := sim.Run(ctx, sc, sim.Options{Node: p.URL(), Restart: p.RestartHook(sc.Restart.Down.D())})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Log("\n" + text.String())
	if len(rep.Restarts) != 1 || rep.Restarts[0].Err != "" {
		t.Fatalf("restarts %+v, want one without error\nnode log:\n%s", rep.Restarts, logs)
	}
	if !rep.LedgerOK {
		t.Errorf("ledger differences: %v", rep.Ledger.Differences)
	}
	if rep.Ledger.Acked == 0 {
		t.Error("no answer acknowledged")
	}
	if rep.HonestExpired != 0 {
		t.Errorf("%d honest contracts expired across the restart, want 0", rep.HonestExpired)
	}
	if rep.Uploads.Done != 1 || rep.Ledger.Uploads != 1 {
		t.Errorf("uploads done %d, checked after the restart %d, want 1 and 1", rep.Uploads.Done, rep.Ledger.Uploads)
	}
	if len(rep.Anomalies) != 0 || rep.CheaterAccepted != 0 {
		t.Errorf("anomalies: %v", rep.Anomalies)
	}
	if t.Failed() {
		t.Logf("node log:\n%s", logs)
	}
}
