package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/proof"
)

// FarmerStats are the counts of a group or kind of virtual farmers.
type FarmerStats struct {
	// Contracts taken, of which UploadPieces were pieces of uploads.
	Contracts    int64 `json:"contracts"`
	UploadPieces int64 `json:"upload_pieces"`
	// Sent answers; the node's verdicts on them.
	Sent     int64 `json:"answers_sent"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
	// Expired contracts (as the node reported them), and the part the
	// farmer did not expect: not after a late or rejected answer, nor an
	// outage.
	Expired           int64 `json:"expired"`
	UnexpectedExpired int64 `json:"unexpected_expired"`
	// Ended contracts: "no more challenges".
	Ended int64 `json:"ended"`
	// Late kind: answers sent after the due time, and how the node took
	// them (it must say "contract expired").
	LateSent     int64 `json:"late_sent,omitempty"`
	LateExpired  int64 `json:"late_expired,omitempty"`
	LateAccepted int64 `json:"late_accepted,omitempty"`
	// Lossy kind: challenges proved, those naming a lost leaf (hits), hits
	// the node rejected (detected) or accepted (missed), and clean answers
	// it rejected (false alarms).
	LossyChallenges  int64 `json:"lossy_challenges,omitempty"`
	LossyHits        int64 `json:"lossy_hits,omitempty"`
	LossyDetected    int64 `json:"lossy_detected,omitempty"`
	LossyMissed      int64 `json:"lossy_missed,omitempty"`
	LossyFalseAlarms int64 `json:"lossy_false_alarms,omitempty"`
	// LossyFirst counts the contracts whose first answer the node judged,
	// LossyFirstDetected those it rejected.
	LossyFirst         int64 `json:"lossy_first,omitempty"`
	LossyFirstDetected int64 `json:"lossy_first_detected,omitempty"`
	// Surplus: calls an honest farmer made to take an upload piece that
	// brought prototype chunks only (someone else had taken it).
	Surplus int64 `json:"surplus_calls,omitempty"`
	// Replaced: correct answers refused after a restart because the node
	// had issued a new challenge in place of the one the farmer held
	// (the farmer then fetched it); not counted as rejected.
	Replaced int64 `json:"replaced_challenges,omitempty"`
	// Cheater kind: made-up proofs the node accepted (must be 0).
	BogusAccepted int64 `json:"bogus_accepted,omitempty"`
	// Flaky kind: times it went offline.
	Outages int64 `json:"outages,omitempty"`
	// Anomalies: anything the node did that it must not (listed in
	// Report.Anomalies).
	Anomalies int64 `json:"anomalies"`
}

func (s *FarmerStats) add(o FarmerStats) {
	s.Contracts += o.Contracts
	s.UploadPieces += o.UploadPieces
	s.Sent += o.Sent
	s.Accepted += o.Accepted
	s.Rejected += o.Rejected
	s.Expired += o.Expired
	s.UnexpectedExpired += o.UnexpectedExpired
	s.Ended += o.Ended
	s.LateSent += o.LateSent
	s.LateExpired += o.LateExpired
	s.LateAccepted += o.LateAccepted
	s.LossyChallenges += o.LossyChallenges
	s.LossyHits += o.LossyHits
	s.LossyDetected += o.LossyDetected
	s.LossyMissed += o.LossyMissed
	s.LossyFalseAlarms += o.LossyFalseAlarms
	s.LossyFirst += o.LossyFirst
	s.LossyFirstDetected += o.LossyFirstDetected
	s.BogusAccepted += o.BogusAccepted
	s.Surplus += o.Surplus
	s.Replaced += o.Replaced
	s.Outages += o.Outages
	s.Anomalies += o.Anomalies
}

// Report is what a run found.
type Report struct {
	Scenario string    `json:"scenario"`
	Node     string    `json:"node"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	// IntervalMS is the challenge interval used (the hint, or learned).
	IntervalMS float64 `json:"interval_ms"`
	// K is the leaves per challenge of the detection table.
	K int `json:"leaves_per_challenge"`

	Routes []RouteReport `json:"routes"`
	Total  RouteReport   `json:"total"`
	// Kinds sums the groups of each farmer kind; Groups are as in the
	// scenario.
	Kinds  []KindReport  `json:"kinds"`
	Groups []GroupReport `json:"groups"`

	ProofsAccepted   int64 `json:"proofs_accepted"`
	ProofsRejected   int64 `json:"proofs_rejected"`
	ContractsExpired int64 `json:"contracts_expired"`
	// HonestExpired counts expired contracts of honest farmers: 0 on a
	// healthy node.
	HonestExpired int64 `json:"honest_expired"`
	// CheaterAccepted counts made-up proofs accepted: must be 0.
	CheaterAccepted int64 `json:"cheater_accepted"`

	Uploads   UploadReport      `json:"uploads"`
	Errors    []ErrorCount      `json:"errors"`
	Detection []DetectionReport `json:"detection"`
	Restarts  []RestartWindow   `json:"restarts,omitempty"`
	Ledger    Ledger            `json:"ledger"`
	LedgerOK  bool              `json:"ledger_ok"`
	Series    []Sample          `json:"series"`
	Anomalies []string          `json:"anomalies"`
	// Refused is how many virtual farmers the node gave no token because
	// of its per-IP token limit.
	Refused int64 `json:"farmers_refused,omitempty"`
	// QuotesLimited is how many getQuote calls the node refused with 429.
	QuotesLimited int64           `json:"quotes_limited,omitempty"`
	Notes         []string        `json:"notes,omitempty"`
	UploadList    []*UploadRecord `json:"upload_list,omitempty"`
}

// RouteReport is one route's requests and latency (ms).
type RouteReport struct {
	Route    string  `json:"route"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// KindReport is one farmer kind's figures.
type KindReport struct {
	Kind    Kind `json:"kind"`
	Farmers int  `json:"farmers"`
	FarmerStats
}

// GroupReport is one scenario farmer group's figures.
type GroupReport struct {
	Group int         `json:"group"`
	Spec  FarmerGroup `json:"spec"`
	FarmerStats
}

// UploadReport counts uploads by outcome.
type UploadReport struct {
	Started    int `json:"started"`
	Done       int `json:"done"`
	Failed     int `json:"failed"`
	Unfinished int `json:"unfinished"`
	Skipped    int `json:"skipped"`
	Paid       int `json:"paid"`
	// Seconds from quote to status 400, median and slowest.
	P50Seconds float64 `json:"p50_seconds"`
	MaxSeconds float64 `json:"max_seconds"`
}

// ErrorCount is one kind of failed request.
type ErrorCount struct {
	Kind  string `json:"kind"`
	Count int64  `json:"count"`
}

// DetectionReport compares a lossy group's detection rate per challenge
// with theory: a farmer that lost a fraction f of its leaves (each leaf
// lost with probability f) is caught by a challenge of k distinct leaves
// with probability 1 − (1 − f)^k.
//
// Observed is measured on each contract's first challenge, where the
// loss pattern is fresh. Over all challenges the rate is lower: a
// contract is dropped at its first detection, so contracts that lost few
// leaves (or none, likely in small chunks) answer more challenges than the
// others. That rate is AllObserved.
type DetectionReport struct {
	Group int     `json:"group"`
	Lost  float64 `json:"lost"`
	K     int     `json:"k"`
	// Contracts whose first answer the node judged, and of them those it
	// rejected.
	Contracts int64   `json:"contracts"`
	Detected  int64   `json:"detected"`
	Observed  float64 `json:"observed"`
	Theory    float64 `json:"theory"`
	// All answers judged, those naming a lost leaf (the sim's truth),
	// those rejected, and hits the node accepted (must be 0).
	Answers     int64   `json:"answers"`
	Hits        int64   `json:"hits"`
	Rejected    int64   `json:"rejected"`
	Missed      int64   `json:"missed"`
	AllObserved float64 `json:"all_observed"`
}

// report assembles the report after the farmers and uploaders stopped.
func (r *run) report(farmers []*vfarmer, uploaders []*vuploader, elapsed time.Duration) *Report {
	rep := &Report{Scenario: r.sc.Name, Node: r.node, Started: r.m.start, Seconds: elapsed.Seconds(),
		IntervalMS: ms(r.intervalOr(0)), K: int(r.k.Load())}
	if rep.K == 0 {
		rep.K = DefaultK
	}
	secs := max(elapsed.Seconds(), 1e-9)
	for _, name := range allRoutes {
		rs := r.m.routes[name]
		s := rs.hist.Snapshot()
		if s.N == 0 {
			continue
		}
		rep.Routes = append(rep.Routes, routeReport(name, s, rs.errors.Load(), secs))
	}
	rep.Total = routeReport("all", r.m.all.Snapshot(), r.m.failures.Load(), secs)

	groups := make([]GroupReport, len(r.sc.Farmers))
	for i, g := range r.sc.Farmers {
		groups[i] = GroupReport{Group: i, Spec: g}
	}
	kinds := map[Kind]*KindReport{}
	for _, f := range farmers {
		groups[f.group].add(f.stats)
		k := kinds[f.g.Kind]
		if k == nil {
			k = &KindReport{Kind: f.g.Kind}
			kinds[f.g.Kind] = k
		}
		k.Farmers++
		k.add(f.stats)
		rep.Anomalies = append(rep.Anomalies, f.notes...)
		if f.g.Kind == Honest {
			rep.HonestExpired += f.stats.Expired
		}
	}
	rep.Groups = groups
	for _, kind := range Kinds {
		if k := kinds[kind]; k != nil {
			rep.Kinds = append(rep.Kinds, *k)
			rep.ProofsAccepted += k.Accepted
			rep.ProofsRejected += k.Rejected
			rep.ContractsExpired += k.Expired
			rep.CheaterAccepted += k.BogusAccepted
		}
	}
	for _, g := range groups {
		if g.Spec.Kind != Lossy {
			continue
		}
		d := DetectionReport{Group: g.Group, Lost: g.Spec.Lost, K: rep.K,
			Contracts: g.LossyFirst, Detected: g.LossyFirstDetected,
			Theory:  proof.DetectionProbability(g.Spec.Lost, rep.K, 1),
			Answers: g.Accepted + g.Rejected, Hits: g.LossyHits, Rejected: g.Rejected, Missed: g.LossyMissed}
		if d.Contracts > 0 {
			d.Observed = float64(d.Detected) / float64(d.Contracts)
		}
		if d.Answers > 0 {
			d.AllObserved = float64(d.Rejected) / float64(d.Answers)
		}
		rep.Detection = append(rep.Detection, d)
	}

	r.uploadMu.Lock()
	rep.UploadList = slices.Clone(r.uploads)
	rep.Notes = append(rep.Notes, r.notes...)
	r.uploadMu.Unlock()
	rep.Notes = append(rep.Notes, r.hintNotes()...)
	if rep.Refused = r.refused.Load(); rep.Refused > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d virtual farmers got no token: the node allows only a few tokens per IP address. "+
			"Start it with --max-tokens-per-ip 0, or give the scenario \"forwarded_for\": true and start the node with --trusted-proxies 127.0.0.1", rep.Refused))
	}
	if rep.QuotesLimited = r.quotesLimited.Load(); rep.QuotesLimited > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d getQuote calls were refused with 429 (the node's --quote-rate; all virtual uploaders share one address) "+
			"and waited out: the uploads ran slower than the scenario asks. Start the node with --quote-rate 0", rep.QuotesLimited))
	}
	var took []float64
	for _, u := range rep.UploadList {
		rep.Uploads.Started++
		if u.Paid {
			rep.Uploads.Paid++
		}
		switch u.Outcome {
		case OutcomeDone:
			rep.Uploads.Done++
			took = append(took, u.Done.Sub(u.Started).Seconds())
		case OutcomeFailed:
			rep.Uploads.Failed++
		case OutcomeSkipped:
			rep.Uploads.Skipped++
		default:
			rep.Uploads.Unfinished++
		}
	}
	if len(took) > 0 {
		slices.Sort(took)
		rep.Uploads.P50Seconds = took[(len(took)-1)/2]
		rep.Uploads.MaxSeconds = took[len(took)-1]
	}
	if rep.Uploads.Skipped > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d priced uploads skipped: give a chain (--chain-rpc) and funded keys", rep.Uploads.Skipped))
	}

	r.m.errMu.Lock()
	for k, n := range r.m.errors {
		rep.Errors = append(rep.Errors, ErrorCount{Kind: k, Count: n})
	}
	r.m.errMu.Unlock()
	slices.SortFunc(rep.Errors, func(a, b ErrorCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})

	r.restartMu.Lock()
	rep.Restarts = slices.Clone(r.restarts)
	r.restartMu.Unlock()
	r.m.seriesMu.Lock()
	rep.Series = slices.Clone(r.m.series)
	r.m.seriesMu.Unlock()
	if rep.Anomalies == nil {
		rep.Anomalies = []string{}
	}
	return rep
}

func routeReport(name string, s *HistSnapshot, errors int64, secs float64) RouteReport {
	return RouteReport{Route: name, Requests: int64(s.N), Errors: errors, RPS: float64(s.N) / secs,
		P50: ms(s.Quantile(0.50)), P95: ms(s.Quantile(0.95)), P99: ms(s.Quantile(0.99)), Max: ms(s.Max)}
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteText writes the report as text tables.
func (rep *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	p := func(format string, args ...any) { fmt.Fprintf(ew, format, args...) }
	p("Sluice simulation %q against %s: %.1fs, challenge interval %s, k = %d\n\n",
		rep.Scenario, rep.Node, rep.Seconds, time.Duration(rep.IntervalMS*float64(time.Millisecond)).Round(time.Millisecond), rep.K)

	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "route\trequests\treq/s\terrors\tp50\tp95\tp99\tmax\t")
	for _, r := range append(slices.Clone(rep.Routes), rep.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%s\t%s\t%s\t%s\t\n", r.Route, r.Requests, r.RPS, r.Errors,
			fmtMS(r.P50), fmtMS(r.P95), fmtMS(r.P99), fmtMS(r.Max))
	}
	tw.Flush()

	p("\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "farmers\tcount\tcontracts\tanswers\taccepted\trejected\texpired\tunexpected\t\t")
	for _, k := range rep.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\t%s\n", k.Kind, k.Farmers, k.Contracts, k.Sent,
			k.Accepted, k.Rejected, k.Expired, k.UnexpectedExpired, kindNote(k))
	}
	tw.Flush()
	p("\nProofs: %d accepted, %d rejected. Contracts expired: %d (honest farmers: %d). Made-up proofs accepted: %d.\n",
		rep.ProofsAccepted, rep.ProofsRejected, rep.ContractsExpired, rep.HonestExpired, rep.CheaterAccepted)
	u := rep.Uploads
	p("Uploads: %d started, %d completed and read back, %d failed, %d unfinished, %d skipped (%d paid)",
		u.Started, u.Done, u.Failed, u.Unfinished, u.Skipped, u.Paid)
	if u.Done > 0 {
		p("; quote to status 400: median %.1fs, slowest %.1fs", u.P50Seconds, u.MaxSeconds)
	}
	p(".\n")

	if len(rep.Detection) > 0 {
		p("\nLossy farmers, detection per challenge (f = fraction of leaves lost, k leaves per challenge),\n" +
			"observed on each contract's first challenge (over all answers it is lower: a contract caught is dropped,\n" +
			"so contracts that lost few leaves answer more often):\n")
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "f\tk\tcontracts\tcaught\tobserved\ttheory 1-(1-f)^k\t\tall answers\tlost leaf named\trejected\t")
		for _, d := range rep.Detection {
			fmt.Fprintf(tw, "%.3g\t%d\t%d\t%d\t%.1f%%\t%.1f%%\t\t%d\t%d\t%d (%.1f%%)\t\n", d.Lost, d.K, d.Contracts, d.Detected,
				100*d.Observed, 100*d.Theory, d.Answers, d.Hits, d.Rejected, 100*d.AllObserved)
		}
		tw.Flush()
	}

	p("\nErrors by kind:")
	if len(rep.Errors) == 0 {
		p(" none\n")
	} else {
		p("\n")
		for _, e := range rep.Errors {
			p("  %8d  %s\n", e.Count, e.Kind)
		}
	}

	for _, w := range rep.Restarts {
		p("\nRestart: the node was down from %s to %s (%.2fs)", clock(w.Down), clock(w.Up), w.Up.Sub(w.Down).Seconds())
		if w.Err != "" {
			p(": %s", w.Err)
		}
		p(".\n")
	}

	l := rep.Ledger
	p("\nLedger: ")
	switch {
	case l.NodeGone != "":
		p("not checked: the node did not answer at the end of the run (%s).\n", l.NodeGone)
	case l.Skipped:
		p("not checked.\n")
	default:
		if rep.LedgerOK {
			p("OK. ")
		} else {
			p("%d DIFFERENCES. ", len(l.Differences))
		}
		p("%d farmers: %d answers acknowledged, %d more inferred applied, %d unsettled; the node counts %d heartbeats. %d completed uploads still at status 400.\n",
			l.Farmers, l.Acked, l.Inferred, l.Uncertain, l.Heartbeats, l.Uploads)
		for _, d := range l.Differences {
			p("  - %s\n", d)
		}
	}
	if len(rep.Anomalies) > 0 {
		p("\nAnomalies (the node did what it must not):\n")
		for _, a := range rep.Anomalies {
			p("  - %s\n", a)
		}
	}
	for _, n := range rep.Notes {
		p("\nNote: %s\n", n)
	}
	return ew.err
}

// kindNote is the per-kind remark of the farmers table.
func kindNote(k KindReport) string {
	var parts []string
	switch k.Kind {
	case Late:
		parts = append(parts, fmt.Sprintf("%d answers sent late: %d expired, %d accepted", k.LateSent, k.LateExpired, k.LateAccepted))
	case Lossy:
		parts = append(parts, fmt.Sprintf("%d challenges named a lost leaf, %d rejected, %d accepted", k.LossyHits, k.LossyDetected, k.LossyMissed))
	case Flaky:
		parts = append(parts, fmt.Sprintf("%d outages", k.Outages))
	case Cheater:
		parts = append(parts, fmt.Sprintf("%d made-up proofs accepted", k.BogusAccepted))
	}
	if k.Surplus > 0 {
		parts = append(parts, fmt.Sprintf("%d calls for upload pieces found none", k.Surplus))
	}
	if k.UploadPieces > 0 {
		parts = append(parts, fmt.Sprintf("%d upload pieces", k.UploadPieces))
	}
	if k.Replaced > 0 {
		parts = append(parts, fmt.Sprintf("%d challenges replaced by the restart", k.Replaced))
	}
	if k.Ended > 0 {
		parts = append(parts, fmt.Sprintf("%d ended", k.Ended))
	}
	return strings.Join(parts, "; ")
}

// fmtMS formats milliseconds with sensible precision.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	case v < 10000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.1fs", v/1000)
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	_, e.err = e.w.Write(p)
	return len(p), nil
}
