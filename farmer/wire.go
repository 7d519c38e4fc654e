package farmer

import (
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

// NewTokenResponse is the body of /new and /heartbeat: the farmer's token
// and the node's proof scheme with its public parameters.
type NewTokenResponse struct {
	Token     string       `json:"token"`
	Type      string       `json:"type"`
	Heartbeat proof.Params `json:"heartbeat"`
}

// ChunkItem is one contract handed out by /chunk: the chunk's identity and
// where its bytes come from (Seed for a prototype chunk, whose bytes are
// proof.NewSeeded(Seed, Size); URL for a chunk of an uploaded file), the tag
// to check the bytes against, and the first challenge, due Due seconds after
// the node sent it.
type ChunkItem struct {
	FileHash  sluice.FileHash `json:"file_hash"`
	Size      int64           `json:"size"`
	Seed      string          `json:"seed,omitempty"`
	URL       string          `json:"url,omitempty"`
	Challenge proof.Challenge `json:"challenge"`
	Tag       proof.Tag       `json:"tag"`
	Due       float64         `json:"due"`
}

// ChallengeItem is one entry of a /challenge answer. A live contract has a
// Challenge, Due (seconds from when the node answered) and Answered (true
// when the current challenge is already answered: the next one is not
// available before Due). A contract that ended has Status
// "no more challenges"; one that expired or is unknown has Error.
type ChallengeItem struct {
	FileHash  sluice.FileHash `json:"file_hash"`
	Challenge proof.Challenge `json:"challenge,omitzero"`
	Due       float64         `json:"due,omitempty"`
	Answered  bool            `json:"answered,omitempty"`
	Status    string          `json:"status,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// ProofItem is one answer sent to /answer.
type ProofItem struct {
	FileHash sluice.FileHash `json:"file_hash"`
	Proof    proof.Proof     `json:"proof"`
}

// ReportItem is the node's verdict on one ProofItem: Status "ok", or an
// Error such as "proof invalid" or "contract expired".
type ReportItem struct {
	FileHash sluice.FileHash `json:"file_hash"`
	Status   string          `json:"status,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// StatusOK is the Status of an accepted proof.
const StatusOK = "ok"

// Wire envelopes.
type (
	chunksResponse struct {
		Chunks []ChunkItem `json:"chunks"`
	}
	challengesRequest struct {
		Hashes []sluice.FileHash `json:"hashes"`
	}
	challengesResponse struct {
		Challenges []ChallengeItem `json:"challenges"`
	}
	answersRequest struct {
		Proofs []ProofItem `json:"proofs"`
	}
	answersResponse struct {
		Report []ReportItem `json:"report"`
	}
	newRequest struct {
		Message   string `json:"message"`
		Signature string `json:"signature"`
	}
	errorResponse struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
)

// Seconds converts a wire "due" (float seconds) to a duration. Negative
// and NaN values give 0; values beyond a year are clipped to a year, so the
// conversion never overflows.
func Seconds(due float64) time.Duration {
	const maxDue = 365 * 24 * time.Hour
	if !(due > 0) {
		return 0
	}
	if due >= maxDue.Seconds() {
		return maxDue
	}
	return time.Duration(due * float64(time.Second))
}
