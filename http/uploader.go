package http

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/microservice"
)

// Uploads is what the uploader API needs from the engine.
type Uploads interface {
	StorageInfo() []microservice.Storage
	NewQuote(ctx context.Context, req actors.QuoteRequest) (actors.QuoteResult, error)
	Quote(ctx context.Context, id string) (sluice.Quote, error)
	// CheckSigned verifies a signed request and spends its nonce.
	CheckSigned(ctx context.Context, owner, quoteID, nonce, signature string) error
	// VerifySigned verifies a signed request without spending its nonce.
	VerifySigned(ctx context.Context, owner, quoteID, nonce, signature string) error
	// StartUpload records an upload's files and spends its nonce, together.
	StartUpload(ctx context.Context, id string, up actors.StartUpload) error
	FailQuote(ctx context.Context, id string, status int) error
	QuoteStatus(ctx context.Context, id string) (int, error)
	// QuoteLink answers getLink: it checks the signature, then that the
	// quote has links (400 "Upload not completed yet." before, asking no
	// microservice), and only then spends the nonce; a proxied quote
	// forwards the request's own nonce and signature to its microservice.
	QuoteLink(ctx context.Context, id, nonce, signature string) (json.RawMessage, error)
	History(ctx context.Context, owner, typ string, page, size int) (actors.HistoryPage, error)
	// ProxiedHistory forwards getHistory to a microservice's type; false
	// when the node answers from its own records.
	ProxiedHistory(ctx context.Context, typ string, params url.Values) (json.RawMessage, bool, error)
}

// BlobPutter stores uploaded files in the temporary store. Stage writes
// one durably to the store's pending area, without hashing it (the quote
// seals it after the acknowledgement, decision 0005), reading at most
// limit bytes: more is an error wrapping ErrBlobTooLarge and nothing is
// kept. Discard removes a staged file whose upload was refused.
type BlobPutter interface {
	Stage(ctx context.Context, r io.Reader, limit int64) (pending string, n int64, err error)
	Discard(pending string) error
}

// ErrBlobTooLarge is what a BlobPutter wraps when the limit was passed.
var ErrBlobTooLarge = errors.New("blob too large")

// Uploader API limits.
const (
	maxQuoteBody = 1 << 20
	maxFiles     = 64
	maxPageSize  = 100
)

// uploaderError answers in the uploader API's error format.
func (s *Server) uploaderError(w http.ResponseWriter, r *http.Request, err error) {
	code := farmerStatus(err)
	var re *microservice.RemoteError
	if errors.As(err, &re) {
		// Relay the microservice's message; its 4xx stays a 4xx, anything
		// else is a bad gateway.
		code = http.StatusBadGateway
		if re.Status >= 400 && re.Status < 500 {
			code = re.Status
		}
		writeJSON(w, code, map[string]string{"error": re.Message})
		return
	}
	if code == http.StatusInternalServerError {
		s.log.Error(eventInternalError, zap.String("route", routeOf(r)), zap.Error(err))
	}
	setRetryAfter(w, err)
	writeJSON(w, code, map[string]string{"error": sluice.Message(err)})
}

func (s *Server) uploads(w http.ResponseWriter, r *http.Request) Uploads {
	b := s.farmers.Load()
	if b == nil || b.Farmers == nil {
		s.uploaderError(w, r, errStarting)
		return nil
	}
	u, ok := b.Farmers.(Uploads)
	if !ok {
		s.uploaderError(w, r, errStarting)
		return nil
	}
	return u
}

func (s *Server) uploaderRoutes(r chi.Router) {
	r.Get("/", s.storageInfo)
	r.Post("/getQuote", s.getQuote)
	r.Post("/upload", s.upload)
	r.Get("/getStatus", s.getStatus)
	r.Post("/getStatus", s.getStatus)
	r.Get("/getLink", s.getLink)
	r.Post("/getLink", s.getLink)
	r.Get("/getHistory", s.getHistory)
	if s.cfg.BlobHandler != nil {
		r.Handle("/ipfs/*", s.cfg.BlobHandler)
	}
}

// cors lets browsers call the public API from other origins, preflight
// included.
var (
	corsAnyOrigin = []string{"*"}
	corsExposed   = []string{"Retry-After, Content-Length"}
)

func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Shared values, not Set's fresh slices: every response carries
		// them, and nothing appends to or edits them.
		h["Access-Control-Allow-Origin"] = corsAnyOrigin
		h["Access-Control-Expose-Headers"] = corsExposed
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
			} else {
				h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding")
			}
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// stripSlash tolerates one trailing slash on the uploader routes.
func stripSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") && !strings.HasPrefix(p, "/api/") && !strings.HasPrefix(p, "/status") {
			r.URL.Path = strings.TrimSuffix(p, "/")
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) storageInfo(w http.ResponseWriter, r *http.Request) {
	u := s.uploads(w, r)
	if u == nil {
		return
	}
	type info struct {
		Type        string                       `json:"type"`
		Description string                       `json:"description"`
		Payment     []microservice.PaymentOption `json:"payment"`
	}
	out := []info{}
	for _, st := range u.StorageInfo() {
		out = append(out, info{Type: st.Type, Description: st.Description, Payment: st.Payment})
	}
	writeJSON(w, http.StatusOK, out)
}

type quoteBody struct {
	Type  *string `json:"type"`
	Files []struct {
		Length json.Number `json:"length"`
	} `json:"files"`
	Duration json.Number `json:"duration"`
	Payment  *struct {
		ChainID      json.RawMessage `json:"chainId"`
		TokenAddress string          `json:"tokenAddress"`
	} `json:"payment"`
	UserAddress string `json:"userAddress"`
}

func (s *Server) getQuote(w http.ResponseWriter, r *http.Request) {
	u := s.uploads(w, r)
	if u == nil {
		return
	}
	// Quotes need no signature (Ocean's API), and each one is kept for the
	// owner's history: the client address is what can be limited.
	if err := s.quoteLimit.allow(s.clientIP(r)); err != nil {
		s.uploaderError(w, r, err)
		return
	}
	raw, err := readSmallBody(w, r, maxQuoteBody)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	req, err := parseQuote(raw)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	res, err := u.NewQuote(r.Context(), req)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

// readSmallBody reads a request body of at most limit bytes. Only a body
// past the limit is too large (413); any other failure (a read timeout, a
// client that went away mid-body) is the body's (400).
func readSmallBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	// Gunzipped when it is gzip, as the Ocean backend's JSON parser does.
	raw, err := io.ReadAll(bodyReader(w, r, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		var se *sluice.Error
		switch {
		case errors.As(err, &tooLarge), errors.Is(err, errTooLarge):
			return nil, errBodyTooLarge
		case errors.As(err, &se):
			return nil, err // a malformed gzip body
		}
		return nil, invalid("the body could not be read.")
	}
	return raw, nil
}

func invalid(format string, args ...any) error {
	return sluice.Errorf(sluice.ErrInvalid, "Invalid input data: "+format, args...)
}

// parseQuote validates a getQuote body; every problem has its own message.
func parseQuote(raw []byte) (actors.QuoteRequest, error) {
	// The body is stored and echoed (getQuote's reply, getHistory) and
	// forwarded to microservices: it must be valid UTF-8 to be JSON.
	if !utf8.Valid(raw) {
		return actors.QuoteRequest{}, invalid("the body is not valid UTF-8.")
	}
	var b quoteBody
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return actors.QuoteRequest{}, invalid("the body is not a JSON object with type, files, duration, payment and userAddress.")
	}
	// One object and nothing after it, as every other route wants
	// (decodeFrom): the body is forwarded to microservices as sent.
	if _, err := dec.Token(); err != io.EOF {
		return actors.QuoteRequest{}, invalid("unexpected data after the JSON object.")
	}
	req := actors.QuoteRequest{Raw: raw}
	switch {
	case b.Type == nil || *b.Type == "":
		return req, invalid("type is missing.")
	case b.Files == nil:
		return req, invalid("files is missing.")
	case len(b.Files) == 0:
		return req, invalid("files is empty.")
	case len(b.Files) > maxFiles:
		return req, invalid("too many files: at most %d.", maxFiles)
	case !isAddress(b.UserAddress):
		return req, invalid("userAddress is not an Ethereum address (0x and 40 hex digits).")
	case b.Payment == nil || len(b.Payment.ChainID) == 0 || string(b.Payment.ChainID) == "null":
		return req, invalid("payment.chainId is missing.")
	case !validChainID(b.Payment.ChainID):
		return req, invalid("payment.chainId must be a string or a whole number.")
	}
	req.Type, req.Owner, req.ChainID, req.Token = *b.Type, b.UserAddress, b.Payment.ChainID, b.Payment.TokenAddress
	if req.Token != "" && !isAddress(req.Token) {
		return req, invalid("payment.tokenAddress is not an address (0x and 40 hex digits).")
	}
	var total int64
	for i, f := range b.Files {
		n, err := strconv.ParseInt(f.Length.String(), 10, 64)
		if err != nil || n <= 0 || n > 1<<40 {
			return req, invalid("files[%d].length must be a whole number of bytes from 1 to 1 TiB.", i)
		}
		total += n
		req.Lengths = append(req.Lengths, n)
	}
	if total > 1<<40 {
		return req, invalid("the files add up to more than 1 TiB.")
	}
	// A missing duration is NewQuote's to refuse, once the type is known
	// to exist (the Ocean backend answers an unknown type first).
	if b.Duration == "" {
		return req, nil
	}
	d, err := strconv.ParseInt(b.Duration.String(), 10, 64)
	if err != nil || d < 0 {
		return req, invalid("duration must be a whole number of seconds.")
	}
	req.Duration, req.HasDuration = d, true
	return req, nil
}

// isAddress reports whether s is an Ethereum address as wallets and the
// Ocean client write it: "0x" and 40 hex digits, in any case.
// (common.IsHexAddress also takes it without the prefix.)
func isAddress(s string) bool {
	return len(s) == 2+2*common.AddressLength && strings.HasPrefix(s, "0x") && common.IsHexAddress(s)
}

// validChainID reports whether a getQuote chainId is one /register would
// take too (microservice.ChainID).
func validChainID(raw json.RawMessage) bool {
	_, ok := microservice.ChainID(raw)
	return ok
}

// maxSignedBody is the largest JSON or form body of a POST getStatus or
// getLink: three short strings.
const maxSignedBody = 1 << 16

// signedParams reads quoteId, nonce and signature from the query or, for
// POST, a JSON or form body. A JSON body must be one valid UTF-8 object
// and nothing after it, as on every other route; an empty one names
// nothing.
func signedParams(w http.ResponseWriter, r *http.Request) (quoteID, nonce, signature string, err error) {
	q := r.URL.Query()
	quoteID, nonce, signature = q.Get("quoteId"), q.Get("nonce"), q.Get("signature")
	if r.Method != http.MethodPost || quoteID != "" {
		return quoteID, nonce, signature, nil
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		r.Body = maxBody(w, r, maxSignedBody)
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return "", "", "", errBodyTooLarge
			}
			return "", "", "", invalid("the form body or the query could not be parsed.")
		}
		return r.Form.Get("quoteId"), r.Form.Get("nonce"), r.Form.Get("signature"), nil
	}
	raw, err := readSmallBody(w, r, maxSignedBody)
	if err != nil {
		return "", "", "", err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", "", "", nil
	}
	if !utf8.Valid(raw) {
		return "", "", "", invalid("the body is not valid UTF-8.")
	}
	var b struct {
		QuoteID   string          `json:"quoteId"`
		Nonce     json.RawMessage `json:"nonce"`
		Signature string          `json:"signature"`
	}
	if err := decodeFrom(bytes.NewReader(raw), &b); err != nil {
		return "", "", "", err
	}
	return b.QuoteID, strings.Trim(string(b.Nonce), `"`), b.Signature, nil
}

var errMissingParams = sluice.Errorf(sluice.ErrInvalid, "Missing query parameters: quoteId, nonce and signature are required.")

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	u := s.uploads(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	id, nonce, sig := r.URL.Query().Get("quoteId"), r.URL.Query().Get("nonce"), r.URL.Query().Get("signature")
	if id == "" || nonce == "" || sig == "" {
		s.uploaderError(w, r, errMissingParams)
		return
	}
	// The nonce is only verified here: StartUpload spends it with the
	// files, so an upload refused on the way can be sent again as signed.
	q, err := u.Quote(ctx, id)
	if err == nil {
		err = u.VerifySigned(ctx, q.Owner, id, nonce, sig)
	}
	if err == nil && (q.Status != sluice.StatusWaiting || len(q.Files) > 0) {
		if len(q.Files) == 0 && (q.Expired(time.Now()) || q.Status == sluice.StatusQuoteExpired) {
			err = &sluice.Error{Kind: sluice.ErrExpired, Message: "Quote expired: ask for a new one."}
		} else {
			err = &sluice.Error{Kind: sluice.ErrConflict, Message: "Files already uploaded."}
		}
	}
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	files, err := s.receiveFiles(ctx, r, q)
	if errors.Is(err, ErrBlobTooLarge) {
		// More bytes than quoted: the quote fails with 402, nothing stored
		// (receiveFiles removed the request's files).
		u.FailQuote(ctx, id, sluice.StatusTooLarge)
		s.uploaderError(w, r, sluice.Errorf(sluice.ErrInvalid, "The files are larger than quoted (%d bytes): nothing was stored.", q.Total()))
		return
	}
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	// The commit of StartUpload is the acknowledgement: the files are on
	// disk, the quote names them, and it seals them (computes their CIDs)
	// afterwards, off this request's path.
	if err := u.StartUpload(ctx, id, actors.StartUpload{Files: files, Nonce: nonce, Signature: sig}); err != nil {
		if refused(err) {
			s.discard(files)
		} // else the commit may have landed: the start-up sweep decides
		s.uploaderError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, "File upload succeeded.")
}

// refused reports whether the quote surely did not record the upload (it
// said no), as opposed to a failure after which it may have.
func refused(err error) bool {
	for _, k := range []error{sluice.ErrInvalid, sluice.ErrNotFound, sluice.ErrConflict, sluice.ErrExpired} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// discard removes the staged files of a refused upload. A file that
// cannot be removed stays until the next start-up sweeps it.
func (s *Server) discard(files []sluice.StoredFile) {
	for _, f := range files {
		if err := s.cfg.Blobs.Discard(f.Pending); err != nil {
			s.log.Warn(eventInternalError, zap.String("route", "/upload"), zap.Error(err))
		}
	}
}

// receiveFiles streams the multipart parts named file1..fileN into the
// temporary store's pending area, never holding a whole file in memory,
// within the quote's total length. The files have no CID yet. When it
// fails it removes the files it had stored.
func (s *Server) receiveFiles(ctx context.Context, r *http.Request, q sluice.Quote) ([]sluice.StoredFile, error) {
	if s.cfg.Blobs == nil {
		return nil, fmt.Errorf("%w: no temporary store", sluice.ErrUnavailable)
	}
	mr, release, err := multipartReader(r)
	if err != nil {
		return nil, sluice.Errorf(sluice.ErrInvalid, "No file sent alongside the request: want multipart/form-data with fields file1..fileN.")
	}
	defer release()
	var files []sluice.StoredFile
	ok := false
	defer func() {
		if !ok {
			s.discard(files)
		}
	}()
	left := q.Total()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, sluice.Errorf(sluice.ErrInvalid, "Malformed multipart body.")
		}
		if part.FileName() == "" && !strings.HasPrefix(part.FormName(), "file") {
			part.Close()
			continue
		}
		if len(files) >= len(q.Lengths) {
			return nil, sluice.Errorf(sluice.ErrInvalid, "More files than quoted (%d).", len(q.Lengths))
		}
		// Quoted lengths are at least 1 byte, and a file without one
		// would give the built-in type nothing to store: refuse it before
		// storing anything.
		var first [1]byte
		if k, err := io.ReadFull(part, first[:]); k == 0 {
			part.Close()
			if err != io.EOF {
				return nil, sluice.Errorf(sluice.ErrInvalid, "Malformed multipart body.")
			}
			return nil, sluice.Errorf(sluice.ErrInvalid, "Empty file %s: every file must hold at least 1 byte; nothing was stored.", part.FormName())
		}
		pending, n, err := s.cfg.Blobs.Stage(ctx, io.MultiReader(bytes.NewReader(first[:]), part), left)
		part.Close()
		if err != nil {
			return nil, err
		}
		left -= n
		name := path.Base(part.FileName())
		var ct *string
		if t := part.Header.Get("Content-Type"); t != "" && t != "application/octet-stream" {
			ct = &t
		} else if t := mime.TypeByExtension(path.Ext(name)); t != "" {
			ct = &t
		}
		files = append(files, sluice.StoredFile{Name: name, Pending: pending, Length: n, ContentType: ct})
	}
	if len(files) == 0 {
		return nil, sluice.Errorf(sluice.ErrInvalid, "No file sent alongside the request.")
	}
	ok = true
	return files, nil
}

// uploadReadSize is the buffer between an upload's body and the multipart
// parser. The parser reads through a 4 KiB buffer of its own, so on its
// own it takes the body from the connection 4 KiB per system call; reading
// in larger pieces costs a copy through memory but saves most of those
// calls.
const uploadReadSize = 64 << 10

var uploadReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, uploadReadSize) }}

// multipartReader is r.MultipartReader reading the body through a pooled
// uploadReadSize buffer. The caller calls release once done with the
// reader and its parts.
func multipartReader(r *http.Request) (mr *multipart.Reader, release func(), err error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "multipart/form-data" && mt != "multipart/mixed") {
		return nil, nil, http.ErrNotMultipart
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, nil, http.ErrMissingBoundary
	}
	br := uploadReaders.Get().(*bufio.Reader)
	br.Reset(r.Body)
	return multipart.NewReader(br, boundary), func() {
		br.Reset(nil)
		uploadReaders.Put(br)
	}, nil
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	u := s.uploads(w, r)
	if u == nil {
		return
	}
	id, _, _, err := signedParams(w, r)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	if id == "" {
		s.uploaderError(w, r, sluice.Errorf(sluice.ErrInvalid, "Missing query parameters: quoteId is required."))
		return
	}
	st, err := u.QuoteStatus(r.Context(), id)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"status": st})
}

func (s *Server) getLink(w http.ResponseWriter, r *http.Request) {
	u := s.uploads(w, r)
	if u == nil {
		return
	}
	id, nonce, sig, err := signedParams(w, r)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	if id == "" || nonce == "" || sig == "" {
		s.uploaderError(w, r, errMissingParams)
		return
	}
	links, err := u.QuoteLink(r.Context(), id, nonce, sig)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(links)
}

// historyRow is one quote in getHistory, in the microservices' row shape.
type historyRow struct {
	Type            string          `json:"type"`
	QuoteID         string          `json:"quoteId"`
	Created         int64           `json:"created"` // Unix milliseconds
	UserAddress     string          `json:"userAddress"`
	Status          int             `json:"status"`
	ChainID         json.RawMessage `json:"chainId"`
	TokenAddress    string          `json:"tokenAddress"`
	TokenAmount     string          `json:"tokenAmount"`
	ApproveAddress  string          `json:"approveAddress"`
	TransactionHash string          `json:"transactionHash,omitempty"`
	Files           []historyFile   `json:"files,omitempty"`
}

// historyFile is one file of a history row. cid is absent while the file
// is not sealed yet (the moments after its upload, decision 0005).
type historyFile struct {
	Name   string `json:"name"`
	CID    string `json:"cid,omitempty"`
	Length int64  `json:"length"`
}

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	u := s.uploads(w, r)
	if u == nil {
		return
	}
	q := r.URL.Query()
	user, nonce, sig := q.Get("userAddress"), q.Get("nonce"), q.Get("signature")
	if user == "" || nonce == "" || sig == "" {
		s.uploaderError(w, r, sluice.Errorf(sluice.ErrInvalid, "Missing query parameters: userAddress, nonce and signature are required."))
		return
	}
	page, size := 1, 25
	var err error
	if p := q.Get("page"); p != "" {
		if page, err = strconv.Atoi(p); err != nil || page < 1 || page > math.MaxInt32 {
			s.uploaderError(w, r, sluice.Errorf(sluice.ErrInvalid, "Invalid page: want a whole number from 1 to 2147483647."))
			return
		}
	}
	if p := q.Get("pageSize"); p != "" {
		if size, err = strconv.Atoi(p); err != nil || size < 1 {
			s.uploaderError(w, r, sluice.Errorf(sluice.ErrInvalid, "Invalid pageSize: want a whole number from 1."))
			return
		}
		size = min(size, maxPageSize)
	}
	if err := u.CheckSigned(r.Context(), user, "", nonce, sig); err != nil {
		s.uploaderError(w, r, err)
		return
	}
	// The real client sends storage=undefined when called without a type
	// (it interpolates the missing argument): that, and an empty value,
	// mean all types.
	typ := q.Get("storage")
	if typ == "undefined" {
		typ = ""
	}
	fwd := url.Values{"userAddress": {user}, "nonce": {nonce}, "signature": {sig},
		"page": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(size)}}
	raw, forwarded, err := u.ProxiedHistory(r.Context(), typ, fwd)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	if forwarded {
		w.Header().Set("Content-Type", "application/json")
		w.Write(raw)
		return
	}
	res, err := u.History(r.Context(), user, typ, page, size)
	if err != nil {
		s.uploaderError(w, r, err)
		return
	}
	if typ == "" {
		typ = "all"
	}
	rows := make([]historyRow, 0, len(res.Quotes))
	for _, qt := range res.Quotes {
		row := historyRow{Type: qt.Type, QuoteID: qt.ID, Created: qt.Created.UnixMilli(), UserAddress: qt.Owner,
			Status: qt.Status, ChainID: qt.ChainID, TokenAddress: qt.Token, TokenAmount: qt.Amount,
			ApproveAddress: qt.Payee, TransactionHash: qt.TxHash}
		for _, f := range qt.Files {
			row.Files = append(row.Files, historyFile{Name: f.Name, CID: f.CID, Length: f.Length})
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, map[string]any{"type": typ, "maxPages": res.MaxPages, "data": rows})
}
