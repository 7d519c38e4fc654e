package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/chain"
	"github.com/sluicehq/sluice/proof"
)

// maxMessage is the longest signed message /new accepts, in characters.
const maxMessage = 1024

func (s *Server) farmerRoutes(r chi.Router) {
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"msg": "ok"})
	})
	r.Get("/new/{address}", s.newToken)
	r.Post("/new/{address}", s.newToken)
	r.Get("/heartbeat/{token}", s.heartbeat)
	r.Delete("/token/{token}", s.deleteToken)
	r.Get("/chunk/{token}", s.chunks)
	r.Get("/chunk/{token}/{size}", s.chunks)
	r.Get("/chunk/{token}/{file_hash}/data", s.chunkData)
	r.Get("/challenge/{token}", s.challenges)
	r.Post("/challenge/{token}", s.challenges)
	r.Get("/challenge/{token}/{file_hash}", s.challenge)
	r.Post("/answer/{token}", s.answers)
	r.Post("/answer/{token}/{file_hash}", s.answer)
	r.Get("/status/list", s.statusList)
	r.Get("/status/list/*", s.statusList)
	r.Get("/status/show/{id}", s.statusShow)
}

// tokenResponse is /new's and /heartbeat's body.
type tokenResponse struct {
	Token     string       `json:"token"`
	Type      string       `json:"type"`
	Heartbeat proof.Params `json:"heartbeat"`
}

type signedRequest struct {
	Message   *string `json:"message"`
	Signature *string `json:"signature"`
}

// clientIP is the address of the client: the peer, or, when the peer is a
// trusted proxy, the right-most X-Forwarded-For entry that is not itself a
// trusted proxy (entries to its left are client-supplied and unverified).
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing further left
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) newToken(w http.ResponseWriter, r *http.Request) {
	e := s.engine(w, r)
	if e == nil {
		return
	}
	req, err := s.tokenRequest(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	raw, err := e.NewToken(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := e.Params()
	writeJSON(w, http.StatusOK, tokenResponse{Token: raw.String(), Type: p.Scheme, Heartbeat: p})
}

// tokenRequest validates a /new request. With signatures required it must
// be a POST whose JSON body holds a message and the address owner's
// signature of it; otherwise the body is ignored.
func (s *Server) tokenRequest(w http.ResponseWriter, r *http.Request) (actors.TokenRequest, error) {
	param := param(r, "address")
	req := actors.TokenRequest{IP: s.clientIP(r)}
	if !s.cfg.RequireSignature {
		address, _, err := sluice.ParseAddress(param)
		req.Address = address
		return req, err
	}
	if r.Method != http.MethodPost {
		return req, sluice.Errorf(sluice.ErrInvalid, "New token requests must include posted signature proving ownership of farming address")
	}
	var body signedRequest
	if err := decodeJSON(w, r, s.cfg.MaxBody, &body); err != nil || body.Message == nil || body.Signature == nil {
		if errors.Is(err, errTooLarge) || errors.Is(err, errNotUTF8) {
			return req, err
		}
		return req, sluice.Errorf(sluice.ErrInvalid, `Posted data must be JSON encoded object including "signature" and "message"`)
	}
	if len([]rune(*body.Message)) > maxMessage {
		return req, sluice.Errorf(sluice.ErrInvalid, "Please restrict your message to less than 1024 bytes.")
	}
	address, kind, err := sluice.ParseAddress(param)
	if err != nil {
		return req, err
	}
	verify := s.cfg.VerifySignature
	if verify == nil {
		verify = chain.VerifyAddressSignature
	}
	// The signature is checked against the address as the client wrote it
	// (base58 is case-sensitive; Ethereum is compared as bytes).
	if err := verify(param, kind, *body.Message, *body.Signature); err != nil {
		return req, err
	}
	req.Address, req.Message, req.Signed = address, *body.Message, true
	return req, nil
}

// token parses the token in the path; a malformed one is an unknown one.
func token(r *http.Request) (sluice.RawToken, error) {
	return sluice.ParseToken(param(r, "token"))
}

// tokenRoute starts a handler of a token's route: the engine and the
// token, or an error already answered.
func (s *Server) tokenRoute(w http.ResponseWriter, r *http.Request) (Farmers, sluice.RawToken, bool) {
	e := s.engine(w, r)
	if e == nil {
		return nil, sluice.RawToken{}, false
	}
	raw, err := token(r)
	if err != nil {
		s.writeError(w, r, err)
		return nil, raw, false
	}
	return e, raw, true
}

// contractRoute is tokenRoute for a contract's route: also the file
// hash in the path.
func (s *Server) contractRoute(w http.ResponseWriter, r *http.Request) (Farmers, sluice.RawToken, sluice.FileHash, bool) {
	e, raw, ok := s.tokenRoute(w, r)
	if !ok {
		return nil, raw, sluice.FileHash{}, false
	}
	h, err := fileHash(r, e, raw)
	if err != nil {
		s.writeError(w, r, err)
		return nil, raw, h, false
	}
	return e, raw, h, true
}

// fileHash parses the file hash in the path of a request by the token
// raw. A malformed hash is refused only once the token is known to exist:
// the original node looked the token up first ("Nonexistent token."),
// then the file ("Invalid file hash"). A well-formed hash needs no extra
// look-up here: the contract call authenticates the token itself.
func fileHash(r *http.Request, e Farmers, raw sluice.RawToken) (sluice.FileHash, error) {
	h, err := sluice.ParseFileHash(param(r, "file_hash"))
	if err != nil {
		if _, authErr := e.Authenticate(r.Context(), raw); authErr != nil {
			return h, authErr
		}
	}
	return h, err
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	e := s.engine(w, r)
	if e == nil {
		return
	}
	raw, err := token(r)
	if err == nil {
		_, err = e.Authenticate(r.Context(), raw)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := e.Params()
	writeJSON(w, http.StatusOK, tokenResponse{Token: raw.String(), Type: p.Scheme, Heartbeat: p})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) {
	e := s.engine(w, r)
	if e == nil {
		return
	}
	raw, err := token(r)
	if err == nil {
		err = e.DeleteToken(r.Context(), raw)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w)
}

// chunkItem is one contract handed out by /chunk.
type chunkItem struct {
	FileHash  sluice.FileHash `json:"file_hash"`
	Size      int64           `json:"size"`
	Seed      string          `json:"seed,omitempty"`
	URL       string          `json:"url,omitempty"`
	Challenge proof.Challenge `json:"challenge"`
	Tag       proof.Tag       `json:"tag"`
	Due       float64         `json:"due"`
}

func dueIn(due, now time.Time) float64 { return due.Sub(now).Seconds() }

// decimal reads a number in a path: plain decimal digits only (no sign,
// no spaces), as the original node's int() routes were meant to take.
// strconv alone would also take "+5".
func decimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// errNotUTF8 refuses a body that is not UTF-8: it is not JSON text (RFC
// 8259, section 8.1), and the batch calls echo parts of it, which would
// make their replies invalid JSON too.
var errNotUTF8 = sluice.Errorf(sluice.ErrInvalid, "Malformed JSON body: not valid UTF-8.")

// decodeJSON reads a JSON body, as decodeBody does, into v, refusing one
// that is not UTF-8 (errNotUTF8).
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	pb, err := readPooledBody(w, r, limit)
	if err != nil {
		return err
	}
	// encoding/json copies what it keeps, json.RawMessage included.
	defer pb.release()
	body := pb.bytes()
	if !utf8.Valid(body) {
		return errNotUTF8
	}
	return decodeFrom(bytes.NewReader(body), v)
}

func (s *Server) chunks(w http.ResponseWriter, r *http.Request) {
	e, raw, ok := s.tokenRoute(w, r)
	if !ok {
		return
	}
	want := s.cfg.DefaultChunkSize
	if p := param(r, "size"); p != "" {
		n, ok := decimal(p)
		if !ok || n <= 0 || n > s.cfg.MaxChunkRequest {
			s.writeError(w, r, sluice.Errorf(sluice.ErrInvalid,
				"Invalid size: want a whole number of bytes from 1 to %d.", s.cfg.MaxChunkRequest))
			return
		}
		want = n
	}
	cs, err := e.Chunks(r.Context(), raw, s.clientIP(r), want)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := time.Now()
	items := make([]chunkItem, 0, len(cs))
	for _, c := range cs {
		item := chunkItem{FileHash: c.FileHash, Size: c.Size, Seed: c.Seed,
			Challenge: c.Challenge, Tag: c.Tag, Due: dueIn(c.Due, now)}
		if c.Source != "" {
			// Uploaded data: the farmer downloads it with its own token.
			item.URL = "/api/downstream/v1/chunk/" + raw.String() + "/" + c.FileHash.String() + "/data"
		}
		items = append(items, item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"chunks": items})
}

// challengeBody is a current challenge as the API shows it.
type challengeBody struct {
	Challenge proof.Challenge `json:"challenge"`
	Due       float64         `json:"due"`
	Answered  bool            `json:"answered"`
}

// challengeItem is one entry of a batch challenge reply: a challenge, a
// status ("no more challenges") or an error.
type challengeItem struct {
	FileHash  json.RawMessage  `json:"file_hash"`
	Challenge *proof.Challenge `json:"challenge,omitempty"`
	Due       *float64         `json:"due,omitempty"`
	Answered  *bool            `json:"answered,omitempty"`
	Status    string           `json:"status,omitempty"`
	Error     string           `json:"error,omitempty"`
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request) {
	e, raw, h, ok := s.contractRoute(w, r)
	if !ok {
		return
	}
	c, err := e.Challenge(r.Context(), raw, h)
	if err == nil {
		err = c.Err
	}
	switch {
	case errors.Is(err, sluice.ErrNoMoreChallenges):
		writeJSON(w, http.StatusOK, map[string]string{"status": sluice.MsgNoMoreChallenges})
	case err != nil:
		s.writeError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, challengeBody{Challenge: c.Challenge, Due: dueIn(c.Due, time.Now()), Answered: c.Answered})
	}
}

type hashesRequest struct {
	Hashes []json.RawMessage `json:"hashes"`
}

// errNoHashes refuses a POST /challenge object without a list of hashes:
// null, {} or {"hashes": null} alike (a body that is not an object, such
// as [], fails to decode first; {"hashes": []} is an empty batch).
var errNoHashes = sluice.Errorf(sluice.ErrInvalid, `Posted data must be a JSON encoded object with a list of hashes: {"hashes": [...]}`)

func (s *Server) challenges(w http.ResponseWriter, r *http.Request) {
	e, raw, ok := s.tokenRoute(w, r)
	if !ok {
		return
	}
	// GET: every live contract. POST: the listed ones, in order; an entry
	// that is not a file hash is a contract not found.
	var posted []json.RawMessage
	var hashes []sluice.FileHash
	var valid []int // index into posted of each entry of hashes
	if r.Method == http.MethodPost {
		var req hashesRequest
		if err := decodeJSON(w, r, s.cfg.MaxBody, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.Hashes == nil {
			s.writeError(w, r, errNoHashes)
			return
		}
		if len(req.Hashes) > s.cfg.MaxBatch {
			s.writeError(w, r, sluice.Errorf(sluice.ErrInvalid, "Too many hashes: at most %d per call.", s.cfg.MaxBatch))
			return
		}
		posted = req.Hashes
		hashes = make([]sluice.FileHash, 0, len(posted))
		for i, p := range posted {
			if h, ok := parseHashJSON(p); ok {
				hashes = append(hashes, h)
				valid = append(valid, i)
			}
		}
	}
	items, err := e.Challenges(r.Context(), raw, hashes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := time.Now()
	out := make([]challengeItem, 0, max(len(posted), len(items)))
	if posted != nil {
		for _, p := range posted {
			out = append(out, challengeItem{FileHash: p, Error: sluice.MsgContractNotFound})
		}
	}
	for i, it := range items {
		item := challengeItemOf(it, now)
		if posted != nil {
			item.FileHash = posted[valid[i]]
			out[valid[i]] = item
			continue
		}
		out = append(out, item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"challenges": out})
}

func challengeItemOf(it actors.ChallengeItem, now time.Time) challengeItem {
	hash, _ := json.Marshal(it.Hash)
	item := challengeItem{FileHash: hash}
	switch {
	case errors.Is(it.Err, sluice.ErrNoMoreChallenges):
		item.Status = sluice.MsgNoMoreChallenges
	case it.Err != nil:
		item.Error = sluice.Message(it.Err)
	default:
		ch, due, answered := it.Challenge, dueIn(it.Due, now), it.Answered
		item.Challenge, item.Due, item.Answered = &ch, &due, &answered
	}
	return item
}

// parseHashJSON accepts a JSON string holding a file hash.
func parseHashJSON(raw json.RawMessage) (sluice.FileHash, bool) {
	if len(raw) == 66 && raw[0] == '"' && raw[65] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		// The usual form: no escapes to undo.
		h, err := sluice.ParseFileHash(string(raw[1:65]))
		return h, err == nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return sluice.FileHash{}, false
	}
	h, err := sluice.ParseFileHash(s)
	return h, err == nil
}

type answerRequest struct {
	Proof json.RawMessage `json:"proof"`
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request) {
	e, raw, h, ok := s.contractRoute(w, r)
	if !ok {
		return
	}
	pb, err := readPooledBody(w, r, s.cfg.MaxBody)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Back to the pool after the reply, unless an actor may still read
	// the proof in it.
	defer pb.release()
	body := pb.bytes()
	var req answerRequest
	if p, ok := proofMember(body); ok {
		req.Proof = p // proofMember takes ASCII bodies only
	} else if !utf8.Valid(body) {
		s.writeError(w, r, errNotUTF8)
		return
	} else if err := decodeFrom(bytes.NewReader(body), &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Proof) == 0 {
		s.writeError(w, r, sluice.Errorf(sluice.ErrInvalid, `Posted data must be a JSON encoded proof object: {"proof": {...}}`))
		return
	}
	reusable, err := e.AnswerReusable(r.Context(), raw, h, req.Proof)
	pb.kept = !reusable
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeOK(w)
}

type proofItem struct {
	FileHash json.RawMessage `json:"file_hash"`
	Proof    json.RawMessage `json:"proof"`
}

// answersRequest is a POST /answer body of objects only, what
// proofsMembers reads in one pass.
type answersRequest struct {
	Proofs []proofItem `json:"proofs"`
}

// answersBody is a POST /answer body as encoding/json reads it when
// proofsMembers does not: the items are decoded one by one, so that one
// that is not an object is an item of the report, not a failed request.
type answersBody struct {
	Proofs []json.RawMessage `json:"proofs"`
}

// errNoProofs refuses a POST /answer body without a list of proofs.
var errNoProofs = sluice.Errorf(sluice.ErrInvalid, `Posted data must be a JSON encoded object with a list of proofs: {"proofs": [{"file_hash": ..., "proof": {...}}]}`)

// proofItems reads a POST /answer body: through proofsMembers when it
// has the usual form, else through encoding/json, item by item. An item
// that is not an object (a number, a string, null, a list) is left empty:
// it has no file hash, and is reported as a contract not found.
func proofItems(body []byte) ([]proofItem, error) {
	if items, ok := proofsMembers(body); ok {
		return items, nil // ASCII only, so UTF-8
	}
	if !utf8.Valid(body) {
		return nil, errNotUTF8
	}
	var req answersBody
	if err := decodeFrom(bytes.NewReader(body), &req); err != nil {
		return nil, err
	}
	if req.Proofs == nil {
		return nil, errNoProofs
	}
	items := make([]proofItem, len(req.Proofs))
	for i, raw := range req.Proofs {
		if bytes.HasPrefix(raw, []byte("{")) {
			// An object decodes into proofItem's raw members without fail.
			_ = json.Unmarshal(raw, &items[i])
		}
	}
	return items, nil
}

type reportItem struct {
	FileHash json.RawMessage `json:"file_hash"`
	Status   string          `json:"status,omitempty"`
	Error    string          `json:"error,omitempty"`
}

func (s *Server) answers(w http.ResponseWriter, r *http.Request) {
	e, raw, ok := s.tokenRoute(w, r)
	if !ok {
		return
	}
	pb, err := readPooledBody(w, r, s.cfg.MaxBody)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The report refers to the body too: the buffer goes back to the pool
	// once the reply is written, unless an actor may still read a proof.
	defer pb.release()
	proofs, err := proofItems(pb.bytes())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(proofs) > s.cfg.MaxBatch {
		s.writeError(w, r, sluice.Errorf(sluice.ErrInvalid, "Too many proofs: at most %d per call.", s.cfg.MaxBatch))
		return
	}
	report := make([]reportItem, len(proofs))
	var items []actors.AnswerItem
	var valid []int
	for i, p := range proofs {
		report[i].FileHash = p.FileHash
		if report[i].FileHash == nil {
			report[i].FileHash = json.RawMessage("null")
		}
		h, ok := parseHashJSON(p.FileHash)
		switch {
		case !ok:
			report[i].Error = sluice.MsgContractNotFound
		case len(p.Proof) == 0:
			report[i].Error = sluice.MsgProofCorrupted
		default:
			items = append(items, actors.AnswerItem{Hash: h, Proof: p.Proof})
			valid = append(valid, i)
		}
	}
	errs, reusable, err := e.AnswersReusable(r.Context(), raw, items)
	pb.kept = !reusable
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for k, err := range errs {
		if err != nil {
			report[valid[k]].Error = sluice.Message(err)
		} else {
			report[valid[k]].Status = "ok"
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"report": report})
}

// ChunkSources is implemented by an engine that stores uploads on farmers.
type ChunkSources interface {
	ChunkSource(ctx context.Context, raw sluice.RawToken, h sluice.FileHash) (cid string, offset, size int64, err error)
}

// BlobOpener opens stored files by CID.
type BlobOpener interface {
	Open(cid string) (actors.BlobFile, int64, error)
}

// chunkData serves the bytes of an uploaded chunk to a farmer holding a
// live contract on it.
func (s *Server) chunkData(w http.ResponseWriter, r *http.Request) {
	e := s.engine(w, r)
	if e == nil {
		return
	}
	src, ok := e.(ChunkSources)
	opener, ok2 := s.cfg.Blobs.(BlobOpener)
	if !ok || !ok2 {
		s.writeError(w, r, sluice.ErrContractNotFound)
		return
	}
	raw, err := token(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h, err := fileHash(r, e, raw)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cid, off, size, err := src.ChunkSource(r.Context(), raw, h)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, _, err := opener.Open(cid)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: the chunk's file is gone: %v", sluice.ErrUnavailable, err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	io.Copy(w, io.NewSectionReader(f, off, size))
}
