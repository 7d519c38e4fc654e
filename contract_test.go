package sluice_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

var (
	t0     = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	iv     = 5 * time.Minute
	scheme = proof.MerkleSegment(proof.DefaultParams())
)

// zeros is a deterministic "random" source for challenge seeds.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

func seededChunk(t *testing.T, seed string, size int64) sluice.Chunk {
	t.Helper()
	tree, err := proof.BuildTree(proof.NewSeeded(seed, size), size, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return sluice.Chunk{Size: size, Seed: seed, Tag: tree.Tag()}
}

func answer(t *testing.T, c *sluice.Contract) []byte {
	t.Helper()
	data := proof.NewSeeded(c.Seed, c.Size)
	tree, _ := proof.BuildTree(data, c.Size, c.Tag.LeafSize)
	p, err := tree.Prove(data, c.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	return b
}

func TestContractTiming(t *testing.T) {
	type step struct {
		at      time.Duration // offset from t0
		answer  bool          // submit a valid proof at this instant
		wantErr error         // from Answer
		state   sluice.ContractState
		index   int
		due     time.Duration
	}
	cases := []struct {
		name  string
		limit int
		steps []step
	}{
		{"answered before due", 0, []step{
			{at: iv - time.Nanosecond, answer: true, state: sluice.ContractLive, index: 0, due: iv},
		}},
		{"answer at the due time is too late", 0, []step{
			{at: iv, answer: true, wantErr: sluice.ErrContractExpired, state: sluice.ContractExpired, due: iv},
		}},
		{"next challenge from the due time, not from the answer", 0, []step{
			{at: time.Second, answer: true, state: sluice.ContractLive, index: 0, due: iv},
			{at: iv, state: sluice.ContractLive, index: 1, due: 2 * iv},
			{at: 2*iv - time.Nanosecond, answer: true, state: sluice.ContractLive, index: 1, due: 2 * iv},
			{at: 2 * iv, state: sluice.ContractLive, index: 2, due: 3 * iv},
		}},
		{"second challenge missed", 0, []step{
			{at: time.Second, answer: true, state: sluice.ContractLive, index: 0, due: iv},
			{at: 2 * iv, state: sluice.ContractExpired, index: 1, due: 2 * iv},
		}},
		{"repeated answer", 0, []step{
			{at: time.Second, answer: true, state: sluice.ContractLive, due: iv},
			{at: 2 * time.Second, answer: true, wantErr: sluice.ErrAlreadyAnswered, state: sluice.ContractLive, due: iv},
		}},
		{"ends after its challenges", 2, []step{
			{at: time.Second, answer: true, state: sluice.ContractLive, due: iv},
			{at: iv + time.Second, answer: true, state: sluice.ContractLive, index: 1, due: 2 * iv},
			{at: 2 * iv, state: sluice.ContractEnded, index: 1, due: 2 * iv},
			{at: 2*iv + 1, answer: true, wantErr: sluice.ErrNoMoreChallenges, state: sluice.ContractEnded, index: 1, due: 2 * iv},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := sluice.NewContract("f", seededChunk(t, "seed1", 4096), scheme, sluice.Terms{Interval: iv, Challenges: tc.limit}, t0, [32]byte{})
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				var err error
				if s.answer {
					err = c.Answer(answer(t, &c), now, scheme, zeros{})
				} else if _, err = c.Advance(now, scheme, zeros{}); err != nil {
					t.Fatal(err)
				}
				if !errors.Is(err, s.wantErr) && !(err == nil && s.wantErr == nil) {
					t.Fatalf("step %d: got error %v, want %v", i, err, s.wantErr)
				}
				if c.State != s.state || c.Index != s.index || !c.Due.Equal(t0.Add(s.due)) {
					t.Fatalf("step %d: got %s index %d due +%v, want %s index %d due +%v",
						i, c.State, c.Index, c.Due.Sub(t0), s.state, s.index, s.due)
				}
			}
		})
	}
}

func TestContractRejectsBadProofsWithoutChange(t *testing.T) {
	c := sluice.NewContract("f", seededChunk(t, "seed1", 4096), scheme, sluice.Terms{Interval: iv}, t0, [32]byte{})
	good := answer(t, &c)
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"not json", []byte("{"), sluice.ErrProofCorrupted},
		{"wrong shape", []byte(`{"leaves":"x"}`), sluice.ErrProofCorrupted},
		{"flipped byte", bytes.Replace(good, []byte(`"data":"`), []byte(`"data":"A`), 1), nil},
		{"no leaves", []byte(`{"leaves":[]}`), sluice.ErrProofInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := c
			err := cc.Answer(tc.raw, t0.Add(time.Second), scheme, zeros{})
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil {
				t.Fatal("bad proof accepted")
			}
			if cc.Answered || cc.Proofs != 0 {
				t.Fatal("a rejected proof changed the contract")
			}
		})
	}
}

func TestContractRecover(t *testing.T) {
	chunk := seededChunk(t, "seed1", 4096)
	for _, tc := range []struct {
		name      string
		answered  bool
		startup   time.Duration
		wantIndex int
		wantDue   time.Duration
		changed   bool
	}{
		{"back before due", false, iv / 2, 0, iv, false},
		{"down across an unanswered due", false, 3 * iv, 0, 4 * iv, true},
		{"down across an answered due", true, 3 * iv, 1, 4 * iv, true},
		{"back exactly at due", false, iv, 0, 2 * iv, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sluice.NewContract("f", chunk, scheme, sluice.Terms{Interval: iv}, t0, [32]byte{})
			if tc.answered {
				if err := c.Answer(answer(t, &c), t0.Add(time.Second), scheme, zeros{}); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := c.Recover(t0.Add(tc.startup), scheme, zeros{})
			if err != nil || changed != tc.changed {
				t.Fatalf("changed %v err %v, want %v", changed, err, tc.changed)
			}
			if c.State != sluice.ContractLive || c.Index != tc.wantIndex || !c.Due.Equal(t0.Add(tc.wantDue)) {
				t.Fatalf("got %s index %d due +%v, want live index %d due +%v", c.State, c.Index, c.Due.Sub(t0), tc.wantIndex, tc.wantDue)
			}
		})
	}
}

func TestChunkPlan(t *testing.T) {
	mix := []int64{32 << 10, 1 << 20, 32 << 20}
	for _, tc := range []struct {
		want int64
		max  int
		plan []int64
	}{
		{0, 10, nil},
		{1000, 10, nil},
		{32 << 10, 10, []int64{32 << 10}},
		{(1 << 20) + (64 << 10) + 5, 10, []int64{1 << 20, 32 << 10, 32 << 10}},
		{100 << 20, 3, []int64{32 << 20, 32 << 20, 32 << 20}},
		{320 << 10, 0, []int64{32 << 10, 32 << 10, 32 << 10, 32 << 10, 32 << 10, 32 << 10, 32 << 10, 32 << 10, 32 << 10, 32 << 10}},
	} {
		got := sluice.ChunkPlan(tc.want, mix, tc.max)
		var sum int64
		for _, s := range got {
			sum += s
		}
		if len(got) != len(tc.plan) || sum > tc.want {
			t.Fatalf("plan(%d, max %d): got %v, want %v", tc.want, tc.max, got, tc.plan)
		}
		for i := range got {
			if got[i] != tc.plan[i] {
				t.Fatalf("plan(%d, max %d): got %v, want %v", tc.want, tc.max, got, tc.plan)
			}
		}
	}
}

func TestTokens(t *testing.T) {
	raw, err := sluice.ParseToken("b45a3e2932c87474cb1bd7e642cf792b")
	if err != nil {
		t.Fatal(err)
	}
	// The reference's vector: the id hashes the raw bytes, not the hex text.
	if got := raw.FarmerID(); got != "063e5cf6d63016cbea55" {
		t.Fatalf("farmer id: got %s, want 063e5cf6d63016cbea55", got)
	}
	tok := sluice.NewToken(raw, "0xab", "192.0.2.1", t0)
	if !tok.Matches(raw) {
		t.Fatal("token does not match its own secret")
	}
	other := raw
	other[0] ^= 1
	if tok.Matches(other) {
		t.Fatal("token matches another secret")
	}
	for _, bad := range []string{"", "b45a", "zz5a3e2932c87474cb1bd7e642cf792b", "b45a3e2932c87474cb1bd7e642cf792b00", "B45A3E2932C87474CB1BD7E642CF792"} {
		if _, err := sluice.ParseToken(bad); !errors.Is(err, sluice.ErrUnknownToken) {
			t.Fatalf("ParseToken(%q): got %v, want unknown token", bad, err)
		}
	}
}

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind sluice.AddressKind
		ok   bool
	}{
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", sluice.AddressEthereum, true},
		{"19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV", sluice.AddressBase58, true},
		{"19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jW", 0, false}, // checksum
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeZ", 0, false},
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA", 0, false},
		{"hello", 0, false},
		{"", 0, false},
	} {
		_, kind, err := sluice.ParseAddress(tc.in)
		if (err == nil) != tc.ok || kind != tc.kind {
			t.Fatalf("ParseAddress(%q): got %v, %v; want kind %v ok %v", tc.in, kind, err, tc.kind, tc.ok)
		}
	}
}
