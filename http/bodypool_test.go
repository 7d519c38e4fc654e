package http_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/metrics"
)

// keeper stands in for the engine: it keeps every proof it is handed, as
// an actor still working on a proof would, and says the memory is reusable
// only for the proofs it was told it may let go.
type keeper struct {
	sluicehttp.Farmers // nil: only the answer calls are used

	mu      sync.Mutex
	kept    [][]byte // the proofs it holds on to
	copies  [][]byte // what they said when handed over
	release bool     // what to answer: may the caller reuse the memory?
}

func (k *keeper) hold(p []byte) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.release {
		k.kept = append(k.kept, p)
		k.copies = append(k.copies, bytes.Clone(p))
	}
	return k.release
}

func (k *keeper) AnswerReusable(_ context.Context, _ sluice.RawToken, _ sluice.FileHash, p []byte) (bool, error) {
	return k.hold(p), nil
}

func (k *keeper) AnswersReusable(_ context.Context, _ sluice.RawToken, items []actors.AnswerItem) ([]error, bool, error) {
	reusable := true
	for _, it := range items {
		reusable = k.hold(it.Proof)
	}
	return make([]error, len(items)), reusable, nil
}

// A body whose proofs an actor may still read is never handed to the next
// request: what the actor reads stays what the farmer sent, however many
// requests follow and reuse the pooled buffers.
func TestBodyKeptByAnActorIsNotReused(t *testing.T) {
	k := &keeper{}
	srv := sluicehttp.New(sluicehttp.Config{}, metrics.New(), zap.NewNop())
	srv.SetFarmers(k)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tok := strings.Repeat("ab", 16)
	hash := strings.Repeat("cd", 32)
	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post(ts.URL+"/api/downstream/v1"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	proof := func(i int) string { return fmt.Sprintf(`{"leaves":["%0600d"]}`, i) }

	// Kept: a single answer and a batch, whose proofs must not change.
	post("/answer/"+tok+"/"+hash, `{"proof":`+proof(1)+`}`)
	post("/answer/"+tok, `{"proofs":[{"file_hash":"`+hash+`","proof":`+proof(2)+`}]}`)
	// Then many requests whose buffers go back to the pool.
	k.mu.Lock()
	k.release = true
	k.mu.Unlock()
	for i := range 200 {
		if i%2 == 0 {
			post("/answer/"+tok+"/"+hash, `{"proof":`+proof(1000+i)+`}`)
		} else {
			post("/answer/"+tok, `{"proofs":[{"file_hash":"`+hash+`","proof":`+proof(1000+i)+`}]}`)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.kept) != 2 {
		t.Fatalf("kept %d proofs, want 2", len(k.kept))
	}
	for i := range k.kept {
		if !bytes.Equal(k.kept[i], k.copies[i]) {
			t.Errorf("proof %d changed under the actor holding it: got %.40q..., want %.40q...", i, k.kept[i], k.copies[i])
		}
	}
}
