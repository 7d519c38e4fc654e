package sim

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// WriteHTML writes the report as one self-contained HTML page: the
// tables, and SVG charts over time of throughput, latency percentiles,
// live contracts and farmers online. It loads nothing from elsewhere.
func (rep *Report) WriteHTML(w io.Writer) error {
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		return err
	}
	xs := make([]float64, len(rep.Series))
	col := func(f func(Sample) float64) []float64 {
		out := make([]float64, len(rep.Series))
		for i, s := range rep.Series {
			out[i] = f(s)
		}
		return out
	}
	for i, s := range rep.Series {
		xs[i] = s.T
	}
	var shade [][2]float64
	for _, r := range rep.Restarts {
		shade = append(shade, [2]float64{r.Down.Sub(rep.Started).Seconds(), r.Up.Sub(rep.Started).Seconds()})
	}
	charts := []template.HTML{
		chart("Throughput", "requests/s", xs, shade, []line{
			{"requests/s", "#1f77b4", col(func(s Sample) float64 { return s.RPS })},
			{"errors/s", "#d62728", col(func(s Sample) float64 { return s.ErrorsPS })},
		}),
		chart("Latency percentiles", "ms", xs, shade, []line{
			{"p50", "#2ca02c", col(func(s Sample) float64 { return s.P50 })},
			{"p95", "#ff7f0e", col(func(s Sample) float64 { return s.P95 })},
			{"p99", "#d62728", col(func(s Sample) float64 { return s.P99 })},
		}),
		chart("Live contracts", "contracts", xs, shade, []line{
			{"live contracts (simulator's count)", "#9467bd", col(func(s Sample) float64 { return float64(s.LiveContracts) })},
		}),
		chart("Farmers online", "farmers", xs, shade, []line{
			{"farmers online", "#17becf", col(func(s Sample) float64 { return float64(s.FarmersOnline) })},
		}),
		chart("Proofs", "per second", xs, shade, []line{
			{"accepted", "#2ca02c", col(func(s Sample) float64 { return float64(s.Accepted) })},
			{"rejected", "#d62728", col(func(s Sample) float64 { return float64(s.Rejected) })},
		}),
	}
	status := "ledger OK"
	if !rep.LedgerOK {
		status = "ledger: differences"
		if rep.Ledger.Skipped {
			status = "ledger not checked"
		}
	}
	return pageTemplate.Execute(w, map[string]any{
		"R": rep, "Charts": charts, "Text": text.String(), "Status": status,
	})
}

// line is one series of a chart.
type line struct {
	name, color string
	ys          []float64
}

// chart draws lines over xs as an inline SVG with axes, a grid, a legend
// and shaded windows (the node's restarts).
func chart(title, unit string, xs []float64, shade [][2]float64, lines []line) template.HTML {
	const (
		width, height          = 860, 240
		left, right, top, base = 60, 20, 30, 30
	)
	pw, ph := float64(width-left-right), float64(height-top-base)
	xmax, ymax := 1.0, 0.0
	for _, x := range xs {
		xmax = max(xmax, x)
	}
	for _, l := range lines {
		for _, y := range l.ys {
			if !math.IsNaN(y) && !math.IsInf(y, 0) {
				ymax = max(ymax, y)
			}
		}
	}
	ymax = niceCeil(ymax)
	px := func(x float64) float64 { return float64(left) + x/xmax*pw }
	py := func(y float64) float64 { return float64(top) + ph - y/ymax*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		width, height, width, height, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="title">%s</text>`, left, template.HTMLEscapeString(title))
	for _, s := range shade {
		x0, x1 := px(max(s[0], 0)), px(min(max(s[1], s[0]), xmax))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="#fde2e2"><title>node restarting</title></rect>`,
			x0, top, max(x1-x0, 1), ph)
	}
	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, left, width-right, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, left-6, py(y)+4, tickLabel(y))
	}
	for i := 0; i <= 5; i++ {
		x := xmax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%.0fs</text>`, px(x), height-10, x)
	}
	fmt.Fprintf(&b, `<text x="14" y="%d" class="tick" transform="rotate(-90 14 %d)" text-anchor="middle">%s</text>`,
		top+int(ph)/2, top+int(ph)/2, template.HTMLEscapeString(unit))
	for li, l := range lines {
		var pts strings.Builder
		for i, y := range l.ys {
			if i >= len(xs) || math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(xs[i]), py(y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`, l.color, strings.TrimSpace(pts.String()))
		lx := left + 10 + li*170
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d" class="legend">%s</text>`,
			lx, top+6, l.color, lx+16, top+10, template.HTMLEscapeString(l.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped names
}

// niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func tickLabel(v float64) string {
	switch {
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"ms":  fmtMS,
	"pct": func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sluice simulation {{.R.Scenario}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 920px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
svg { display: block; margin: 10px 0; }
svg .title { font-weight: 600; font-size: 13px; } svg .tick, svg .legend { font-size: 11px; fill: #555; }
svg .grid { stroke: #eee; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; font-size: 12px; }
</style>
</head>
<body>
<h1>Sluice simulation “{{.R.Scenario}}”</h1>
<p>Against {{.R.Node}}, started {{.R.Started.Format "2006-01-02 15:04:05 MST"}}, {{printf "%.1f" .R.Seconds}} s,
challenge interval {{printf "%.0f" .R.IntervalMS}} ms, k = {{.R.K}}.
<span class="{{if .R.LedgerOK}}ok{{else}}bad{{end}}">{{.Status}}</span></p>

<h2>Over time</h2>
{{range .Charts}}{{.}}
{{end}}
<h2>Requests by route</h2>
<table>
<tr><th>route</th><th>requests</th><th>req/s</th><th>errors</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>
{{range .R.Routes}}<tr><td>{{.Route}}</td><td>{{.Requests}}</td><td>{{printf "%.1f" .RPS}}</td><td>{{.Errors}}</td><td>{{ms .P50}}</td><td>{{ms .P95}}</td><td>{{ms .P99}}</td><td>{{ms .Max}}</td></tr>
{{end}}{{with .R.Total}}<tr><th>{{.Route}}</th><th>{{.Requests}}</th><th>{{printf "%.1f" .RPS}}</th><th>{{.Errors}}</th><th>{{ms .P50}}</th><th>{{ms .P95}}</th><th>{{ms .P99}}</th><th>{{ms .Max}}</th></tr>{{end}}
</table>

<h2>Farmers</h2>
<table>
<tr><th>kind</th><th>farmers</th><th>contracts</th><th>answers</th><th>accepted</th><th>rejected</th><th>expired</th><th>unexpected</th></tr>
{{range .R.Kinds}}<tr><td>{{.Kind}}</td><td>{{.Farmers}}</td><td>{{.Contracts}}</td><td>{{.Sent}}</td><td>{{.Accepted}}</td><td>{{.Rejected}}</td><td>{{.Expired}}</td><td>{{.UnexpectedExpired}}</td></tr>
{{end}}</table>
{{if .R.Detection}}
<h2>Lossy farmers: detection per challenge</h2>
<table>
<tr><th>f</th><th>k</th><th>contracts</th><th>caught at first challenge</th><th>observed</th><th>theory 1 − (1 − f)<sup>k</sup></th><th>all answers</th><th>lost leaf named</th><th>rejected</th></tr>
{{range .R.Detection}}<tr><td>{{.Lost}}</td><td>{{.K}}</td><td>{{.Contracts}}</td><td>{{.Detected}}</td><td>{{pct .Observed}}</td><td>{{pct .Theory}}</td><td>{{.Answers}}</td><td>{{.Hits}}</td><td>{{.Rejected}} ({{pct .AllObserved}})</td></tr>
{{end}}</table>
<p>Observed on each contract's first challenge, where the loss pattern is fresh. Over all challenges the rate is lower: a contract is dropped at its first detection, so contracts that lost few leaves answer more challenges.</p>
{{end}}
<h2>Errors by kind</h2>
{{if .R.Errors}}<table><tr><th>kind</th><th>count</th></tr>
{{range .R.Errors}}<tr><td>{{.Kind}}</td><td>{{.Count}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}

<h2>Full report</h2>
<pre>{{.Text}}</pre>
</body>
</html>
`))
