package loadtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"
)

// WriteHTML renders the report as one HTML page: the verdict first (the
// same claims as the terminal summary), then the charts: throughput and the
// publisher's lag, latency over time, score distributions, and alerts
// against failures. assetsHost is where the page loads echarts.min.js from:
// "./" when the file was copied next to the page (WriteHTMLDir does that),
// "" for go-echarts' public host.
func (r *Report) WriteHTML(w io.Writer, assetsHost string) error {
	if assetsHost == "" {
		assetsHost = "https://go-echarts.github.io/go-echarts-assets/assets/"
	}
	verdict, pass := r.verdictLine()
	data := htmlPage{
		Title:   "streamscore load test " + r.Started.Format(time.RFC3339),
		ECharts: assetsHost + "echarts.min.js",
		Verdict: verdict, Pass: pass,
		Run: fmt.Sprintf("%s of traffic, %d workers", r.Duration.Round(time.Second), r.Workers),
	}
	if !r.Killed.IsZero() {
		data.Run += fmt.Sprintf(", one killed with SIGKILL at +%s", r.Killed.Sub(r.Started).Round(time.Second))
	}
	data.Problems = r.Problems
	for _, s := range r.Scenarios {
		if warn := s.warning(); warn != "" {
			data.Warnings = append(data.Warnings, warn)
		}
		hs := htmlScenario{Name: s.Name, Stream: s.Stream, Claims: s.claims(), Mismatches: s.Mismatches}
		if d := s.Drift; d != nil {
			hs.Drift = d.claims()
			hs.DriftDetails = append(append(hs.DriftDetails, d.Untouched...), d.Early...)
		}
		data.Scenarios = append(data.Scenarios, hs)
	}
	var cs []interface{ RenderSnippet() render.ChartSnippet }
	for _, s := range r.Scenarios {
		cs = append(cs, throughputChart(s), lagChart(s), latencyChart(s), scoreChart(s))
		if s.Detection != nil {
			cs = append(cs, r.detectionChart(s))
		}
		if s.Drift != nil {
			cs = append(cs, driftChart(s))
		}
	}
	for _, c := range cs {
		sn := c.RenderSnippet()
		// go-echarts renders the element and script itself.
		data.Charts = append(data.Charts, template.HTML(sn.Element+sn.Script))
	}
	return pageTemplate.Execute(w, data)
}

type htmlPage struct {
	Title, ECharts, Run, Verdict string
	Pass                         bool
	Warnings, Problems           []string
	Scenarios                    []htmlScenario
	Charts                       []template.HTML
}

type htmlScenario struct {
	Name, Stream string
	Claims       []claim
	Mismatches   []string
	// Drift is the Drift section (empty: none); DriftDetails the alerts
	// that named untouched features or came before the shift.
	Drift        []claim
	DriftDetails []string
}

// Exported fields for the template: claim's are not.
func (c claim) Label() string { return c.label }
func (c claim) Value() string { return c.value }
func (c claim) Bad() bool     { return c.bad }

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<script src="{{.ECharts}}"></script>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; } h3 { font-size: 1em; }
.verdict { font-size: 1.15em; font-weight: bold; padding: .6em .8em; border-radius: 4px; }
.pass { background: #e7f6e7; color: #075e07; } .fail { background: #fde8e8; color: #a00; }
.warn { background: #fff4d6; border: 1px solid #c80; padding: .6em .8em; }
table { border-collapse: collapse; width: 100%; } td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
td:first-child { white-space: nowrap; color: #555; width: 11em; } .bad td { color: #a00; font-weight: bold; }
.container { display: flex; justify-content: center; margin-top: 1.5em; }
</style></head><body>
<h1>{{.Title}}</h1>
<p>{{.Run}}</p>
<p class="verdict {{if .Pass}}pass{{else}}fail{{end}}">{{.Verdict}}</p>
{{range .Warnings}}<p class="warn">{{.}}</p>{{end}}
{{range .Problems}}<p class="warn">PROBLEM: {{.}}</p>{{end}}
{{range .Scenarios}}<h2>{{.Name}} <small>(stream {{.Stream}})</small></h2>
<table>{{range .Claims}}<tr{{if .Bad}} class="bad"{{end}}><td>{{.Label}}</td><td>{{.Value}}</td></tr>{{end}}
{{range .Mismatches}}<tr class="bad"><td>mismatch</td><td>{{.}}</td></tr>{{end}}</table>
{{if .Drift}}<h3>Drift</h3>
<table>{{range .Drift}}<tr{{if .Bad}} class="bad"{{end}}><td>{{.Label}}</td><td>{{.Value}}</td></tr>{{end}}
{{range .DriftDetails}}<tr class="bad"><td>false alarm</td><td>{{.}}</td></tr>{{end}}</table>{{end}}
{{end}}
<h2>Charts</h2>
{{range .Charts}}{{.}}
{{end}}</body></html>
`))

// WriteHTMLDir writes dir/report.html. When echartsJS names a local copy of
// echarts.min.js (the repository pins one in devstack/node), it is copied
// beside the page so the report opens without network access.
func (r *Report) WriteHTMLDir(dir, echartsJS string) (string, error) {
	host := ""
	if echartsJS != "" {
		if b, err := os.ReadFile(echartsJS); err == nil {
			if err := os.WriteFile(filepath.Join(dir, "echarts.min.js"), b, 0o644); err != nil {
				return "", err
			}
			host = "./"
		}
	}
	path := filepath.Join(dir, "report.html")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := r.WriteHTML(f, host); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

func title(t, sub string) charts.GlobalOpts {
	return charts.WithTitleOpts(opts.Title{Title: t, Subtitle: sub})
}

func throughputChart(s *ScenarioReport) *charts.Bar {
	xs, ys := secondsSeries(s.PerSecond)
	bar := charts.NewBar()
	bar.SetGlobalOptions(title(s.Name+": events published per second", fmt.Sprintf("%d events, %.0f/s on average", s.Published, s.PublishRate)),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}))
	items := make([]opts.BarData, len(ys))
	for i, y := range ys {
		items[i] = opts.BarData{Value: y}
	}
	bar.SetXAxis(xs).AddSeries("events/s", items)
	return bar
}

// lagChart shows how far behind its schedule the publisher was, batch by
// batch: flat near zero when it kept real time.
func lagChart(s *ScenarioReport) *charts.Scatter {
	sc := charts.NewScatter()
	sc.SetGlobalOptions(title(s.Name+": publisher lag behind schedule (s)",
		fmt.Sprintf("%d of %d events sent within %s of their schedule; worst %s", s.OnSchedule, s.Published, OnSchedule, s.MaxLag.Round(10*time.Millisecond))),
		charts.WithXAxisOpts(opts.XAxis{Type: "time"}),
		charts.WithYAxisOpts(opts.YAxis{Name: "seconds"}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}))
	sc.AddSeries("worst lag per PutRecords batch", scatterSeries(s.lagSeries))
	return sc
}

func latencyChart(s *ScenarioReport) *charts.Scatter {
	sc := charts.NewScatter()
	sc.SetGlobalOptions(title(s.Name+": end-to-end latency (s) over time",
		fmt.Sprintf("window end carried by the stream to S3 object: p50 %s p99 %s; to alert: p50 %s p99 %s",
			s.S3Latency.P50.Round(10*time.Millisecond), s.S3Latency.P99.Round(10*time.Millisecond),
			s.AlertLatency.P50.Round(10*time.Millisecond), s.AlertLatency.P99.Round(10*time.Millisecond))),
		charts.WithXAxisOpts(opts.XAxis{Type: "time"}),
		charts.WithYAxisOpts(opts.YAxis{Name: "seconds"}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Right: "10%"}))
	sc.AddSeries("to S3", scatterSeries(s.s3Series)).AddSeries("to alert queue", scatterSeries(s.alertSeries))
	return sc
}

func scatterSeries(ps []point) []opts.ScatterData {
	sortPoints(ps)
	out := make([]opts.ScatterData, len(ps))
	for i, p := range ps {
		out[i] = opts.ScatterData{Value: []any{p.at.UnixMilli(), math.Round(p.v*1000) / 1000}}
	}
	return out
}

func scoreChart(s *ScenarioReport) *charts.Bar {
	const buckets = 20
	counts := make([]int, buckets)
	for _, v := range s.Scores {
		if math.IsNaN(v) {
			continue
		}
		counts[min(max(int(v*buckets), 0), buckets-1)]++
	}
	xs := make([]string, buckets)
	items := make([]opts.BarData, buckets)
	for i := range buckets {
		xs[i] = fmt.Sprintf("%.2f", float64(i)/buckets)
		items[i] = opts.BarData{Value: counts[i]}
	}
	bar := charts.NewBar()
	bar.SetGlobalOptions(title(s.Name+": score distribution", fmt.Sprintf("%d scored windows", len(s.Scores))),
		charts.WithYAxisOpts(opts.YAxis{Name: "windows"}))
	bar.SetXAxis(xs).AddSeries("windows", items)
	return bar
}

func (r *Report) detectionChart(s *ScenarioReport) *charts.Scatter {
	d := s.Detection
	sc := charts.NewScatter()
	sc.SetGlobalOptions(title(s.Name+": alerts against failures",
		fmt.Sprintf("recall %.2f, precision %.2f, median lead %s", d.Recall, d.Precision, d.MedianLead.Round(100*time.Millisecond))),
		charts.WithXAxisOpts(opts.XAxis{Type: "time"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "category"}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Right: "10%"}))
	var fails, alerts []opts.ScatterData
	for _, a := range r.Alerts {
		if a.Stream == s.Stream && a.State != "resolved" && !a.IsDrift() {
			alerts = append(alerts, opts.ScatterData{Value: []any{a.Received.UnixMilli(), a.Entity}})
		}
	}
	for _, f := range d.truth {
		fails = append(fails, opts.ScatterData{Value: []any{f.At.UnixMilli(), f.Machine}, Symbol: "diamond", SymbolSize: 14})
	}
	sc.AddSeries("failure (some after the run)", fails).AddSeries("alert received", alerts)
	return sc
}

// driftChart puts the drift alerts on the run's clock against the shift:
// each feature a firing drift alert named, when the alert arrived (the
// features from the shifted field apart from the others), with a line at
// the shift's start.
func driftChart(s *ScenarioReport) *charts.Scatter {
	d := s.Drift
	sub := "nothing shifted"
	if sh := d.Shift; sh != nil {
		sub = fmt.Sprintf("%s %+.4g %s on %d of %d machines", sh.Field, sh.By, SensorUnit(sh.Field), len(sh.Machines), sh.FleetSize)
	}
	sc := charts.NewScatter()
	sc.SetGlobalOptions(title(s.Name+": drift alerts against the calibration shift", sub),
		charts.WithXAxisOpts(opts.XAxis{Type: "time"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "category"}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Right: "10%"}))
	var hit, other []opts.ScatterData
	for _, p := range d.timeline {
		v := opts.ScatterData{Value: []any{p.received.UnixMilli(), p.feature}}
		if p.shifted {
			hit = append(hit, v)
		} else {
			other = append(other, v)
		}
	}
	var series []charts.SeriesOpts
	if sh := d.Shift; sh != nil {
		series = append(series, charts.WithMarkLineNameXAxisItemOpts(opts.MarkLineNameXAxisItem{Name: "shift", XAxis: sh.Start.UnixMilli()}))
	}
	sc.AddSeries("drift alert received: feature of the shifted field", hit, series...).
		AddSeries("drift alert received: any other feature", other)
	return sc
}
