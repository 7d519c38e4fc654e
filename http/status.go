package http

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
)

// statusRow is one farmer in the status API.
type statusRow struct {
	ID         string           `json:"id"`
	Address    string           `json:"address"`
	Location   *sluice.Location `json:"location"`
	Uptime     float64          `json:"uptime"`
	Heartbeats int64            `json:"heartbeats"`
	Contracts  int              `json:"contracts"`
	Size       int64            `json:"size"`
	Online     bool             `json:"online"`
	IPHash     string           `json:"ip_hash"`
	LastDue    *string          `json:"last_due"`
}

func rowOf(f actors.FarmerStatus) statusRow {
	r := statusRow{ID: f.ID, Address: f.Address, Location: f.Location, Uptime: f.Uptime,
		Heartbeats: f.Heartbeats, Contracts: f.Contracts, Size: f.Size, Online: f.Online, IPHash: f.IPHash}
	if !f.LastDue.IsZero() {
		// RFC 1123, as the original list (and its dashboard) used.
		s := f.LastDue.UTC().Format(http.TimeFormat)
		r.LastDue = &s
	}
	return r
}

// maxStatusLimit caps limit (and so the rows of one page).
const maxStatusLimit = 10000

// parseStatusPath reads what follows /status/list: [online/] [by/[d/]KEY/]
// [LIMIT[/PAGE]], every combination the seed lists, with or without a
// trailing slash.
func parseStatusPath(rest string) (actors.StatusQuery, error) {
	var q actors.StatusQuery
	segs := strings.FieldsFunc(rest, func(r rune) bool { return r == '/' })
	next := func() string {
		if len(segs) == 0 {
			return ""
		}
		s := segs[0]
		segs = segs[1:]
		return s
	}
	peek := func() string {
		if len(segs) == 0 {
			return ""
		}
		return segs[0]
	}
	if peek() == "online" {
		q.OnlineOnly = true
		next()
	}
	if peek() == "by" {
		next()
		if peek() == "d" && len(segs) > 1 {
			q.Descending = true
			next()
		}
		q.SortBy = next()
		if q.SortBy == "" {
			return q, &sluice.Error{Kind: sluice.ErrInvalid, Message: sluice.MsgInvalidSort}
		}
	}
	bad := sluice.Errorf(sluice.ErrInvalid, "Invalid limit or page: want whole numbers, limit from 1 to %d.", maxStatusLimit)
	if s := next(); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxStatusLimit {
			return q, bad
		}
		q.Limit = n
	}
	if s := next(); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1<<30 {
			return q, bad
		}
		q.Page = n
	}
	if len(segs) > 0 {
		return q, sluice.Errorf(sluice.ErrNotFound, "No such route.")
	}
	return q, nil
}

func (s *Server) statusList(w http.ResponseWriter, r *http.Request) {
	e := s.engine(w, r)
	if e == nil {
		return
	}
	q, err := parseStatusPath(chi.URLParam(r, "*"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rows, err := e.Status(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]statusRow, len(rows))
	for i, f := range rows {
		out[i] = rowOf(f)
	}
	writeJSON(w, http.StatusOK, map[string]any{"farmers": out})
}

func (s *Server) statusShow(w http.ResponseWriter, r *http.Request) {
	e := s.engine(w, r)
	if e == nil {
		return
	}
	f, err := e.Stats(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rowOf(f))
}
