package farmer_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/farmer"
)

func TestRunRejectsBadConfig(t *testing.T) {
	err := farmer.Run(context.Background(), farmer.Config{Node: "http://n", Address: "a", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "size") {
		t.Fatalf("got %v, want a size error", err)
	}
}

func TestRunStopsCleanlyWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	err := farmer.Run(ctx, farmer.Config{Node: "http://127.0.0.1:1", Address: "a", Size: 1024, Dir: dir})
	if err != nil {
		t.Fatalf("got %v, want nil on cancel", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "chunks")); err != nil || !st.IsDir() {
		t.Fatalf("got %v, want the chunk directory created", err)
	}
}

func TestRunFailsWhenTheNodeRefusesThePing(t *testing.T) {
	h, _ := standIn(t, http.StatusNotFound, "not here")
	err := farmer.Run(context.Background(), farmer.Config{Node: h.url, Address: "a", Size: 1024, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("got %v, want the node's 404", err)
	}
}
