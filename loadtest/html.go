package loadtest

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/components"
	"github.com/go-echarts/go-echarts/v2/opts"
)

// WriteHTML renders the report as one HTML page of charts: throughput,
// latency over time, score distributions, and alerts against failures.
// assetsHost is where the page loads echarts.min.js from: "./" when the file
// was copied next to the page (WriteHTMLDir does that), "" for go-echarts'
// public host.
func (r *Report) WriteHTML(w io.Writer, assetsHost string) error {
	page := components.NewPage()
	page.PageTitle = "streamscore load test " + r.Started.Format(time.RFC3339)
	var cs []components.Charter
	for _, s := range r.Scenarios {
		cs = append(cs, throughputChart(s), latencyChart(s), scoreChart(s))
		if s.Detection != nil {
			cs = append(cs, r.detectionChart(s))
		}
	}
	if assetsHost != "" {
		page.SetAssetsHost(assetsHost)
	}
	page.AddCharts(cs...)
	return page.Render(w)
}

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

func latencyChart(s *ScenarioReport) *charts.Scatter {
	sc := charts.NewScatter()
	sc.SetGlobalOptions(title(s.Name+": end-to-end latency (s) over time",
		fmt.Sprintf("window end to S3 object: p50 %s p99 %s; to alert: p50 %s p99 %s",
			s.S3Latency.P50.Round(10*time.Millisecond), s.S3Latency.P99.Round(10*time.Millisecond),
			s.AlertLatency.P50.Round(10*time.Millisecond), s.AlertLatency.P99.Round(10*time.Millisecond))),
		charts.WithXAxisOpts(opts.XAxis{Type: "time"}),
		charts.WithYAxisOpts(opts.YAxis{Name: "seconds"}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Right: "10%"}))
	series := func(ps []point) []opts.ScatterData {
		sortPoints(ps)
		out := make([]opts.ScatterData, len(ps))
		for i, p := range ps {
			out[i] = opts.ScatterData{Value: []any{p.at.UnixMilli(), math.Round(p.v*1000) / 1000}}
		}
		return out
	}
	sc.AddSeries("to S3", series(s.s3Series)).AddSeries("to alert queue", series(s.alertSeries))
	return sc
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
		if a.Stream == s.Stream && a.State != "resolved" {
			alerts = append(alerts, opts.ScatterData{Value: []any{a.Received.UnixMilli(), a.Entity}})
		}
	}
	for _, f := range d.truth {
		fails = append(fails, opts.ScatterData{Value: []any{f.At.UnixMilli(), f.Machine}, Symbol: "diamond", SymbolSize: 14})
	}
	sc.AddSeries("failure (some after the run)", fails).AddSeries("alert received", alerts)
	return sc
}
