package http

import (
	"net/http"
	"slices"
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
// trailing slash. none reports a limit of 0: the original node passed it
// to SQL as LIMIT 0 and answered an empty list, and so does Sluice (a
// StatusQuery's Limit 0 means all rows, so no query is made).
func parseStatusPath(rest string, decode func(string) string) (q actors.StatusQuery, none bool, err error) {
	segs := strings.FieldsFunc(rest, func(r rune) bool { return r == '/' })
	for i := range segs {
		segs[i] = decode(segs[i])
	}
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
		// Checked here, before the limit, as the original did (and so
		// also when the limit is 0 and the engine is not asked).
		if !slices.Contains(actors.SortKeys, q.SortBy) {
			return q, false, &sluice.Error{Kind: sluice.ErrInvalid, Message: sluice.MsgInvalidSort}
		}
	}
	bad := sluice.Errorf(sluice.ErrInvalid, "Invalid limit or page: want whole numbers, limit from 0 to %d.", maxStatusLimit)
	// Plain decimal digits, as /chunk's size: no sign ("+5", "-0").
	if s := next(); s != "" {
		n, ok := decimal(s)
		if !ok || n > maxStatusLimit {
			return q, false, bad
		}
		q.Limit, none = int(n), n == 0
	}
	if s := next(); s != "" {
		n, ok := decimal(s)
		if !ok || n > 1<<30 {
			return q, false, bad
		}
		q.Page = int(n)
	}
	if len(segs) > 0 {
		return q, false, sluice.Errorf(sluice.ErrNotFound, "No such route.")
	}
	return q, none, nil
}

func (s *Server) statusList(w http.ResponseWriter, r *http.Request) {
	e := s.engine(w, r)
	if e == nil {
		return
	}
	q, none, err := parseStatusPath(chi.URLParam(r, "*"), func(v string) string { return pathSegment(r, v) })
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var rows []actors.FarmerStatus
	if !none {
		if rows, err = e.Status(q); err != nil {
			s.writeError(w, r, err)
			return
		}
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
	f, err := e.Stats(r.Context(), param(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rowOf(f))
}
