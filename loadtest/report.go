package loadtest

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is what a run measured.
type Report struct {
	Started, PublishEnded time.Time
	Duration              time.Duration
	Workers               int
	Killed                time.Time // zero: no worker was killed
	Scenarios             []*ScenarioReport
	Alerts                []ReceivedAlert
	Problems              []string
}

// ScenarioReport is one pipeline's results.
type ScenarioReport struct {
	Name, Stream string
	Published    int
	PublishRate  float64 // events per second while publishing
	PerSecond    map[int64]int
	Files        int
	Rows         int // distinct windows (by result_id) in S3

	// Accounting of every published event.
	Scored      int // counted in closed windows whose counts match exactly
	Held        int // in windows still open (the checkpoint stays before them)
	LateSent    int // sent later than the allowed lateness on purpose
	LateDLQ     int // dead-lettered as late (distinct positions)
	OtherDLQ    map[string]int
	Unaccounted int // none of the above: lost, or counted in a wrong window

	ClosedWindows, MatchedWindows int
	Mismatches                    []string // first few windows whose counts differ

	// OnSchedule events were sent within OnSchedule of when they were due;
	// MaxLag is the worst lag. Latency and detection measure the pipeline
	// only while the publisher keeps its schedule.
	OnSchedule int
	MaxLag     time.Duration
	lagSeries  []point

	// Latencies run from the moment the stream carried a window's end (for
	// the real-time fleet, the window's end) to the row's object in S3 and
	// to the alert on the subscribed queue.
	S3Latency, AlertLatency Percentiles
	s3Series, alertSeries   []point
	// AlertRepeats are alerts delivered again (same rule, state, entity
	// and window) after a failover: at-least-once delivery.
	AlertRepeats int
	Scores       []float64

	Detection *Detection
	// Drift judges the monitor's drift alerts against the calibration
	// shift; nil when nothing was shifted and no drift alert came.
	Drift *DriftReport

	// Flywheel is the model's loop (RunConfig.Flywheel; factory only).
	Flywheel *FlywheelReport
}

type point struct {
	at time.Time
	v  float64
}

// Percentiles of a latency distribution.
type Percentiles struct {
	N             int
	P50, P95, P99 time.Duration
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := sortedTimes(ds)
	at := func(q float64) time.Duration { return s[min(int(math.Ceil(q*float64(len(s))))-1, len(s)-1)] }
	return Percentiles{N: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99)}
}

// Detection compares the alerts with the ground truth: a failing machine
// counts as caught when an alert for it arrived before it failed.
type Detection struct {
	Failing, Alerted, TruePositives, FalsePositives int
	Precision, Recall                               float64
	// Explained counts the caught machines whose first alert's top
	// feature is one of the signals their failure mode drives; Explainable
	// those whose first alert carried top features at all.
	Explained, Explainable int
	MedianLead, MinLead    time.Duration
	// FalseAlarms describe the first alert of each machine that never
	// failed: which, for which window, with what score.
	FalseAlarms []string
	leads       []time.Duration
	truth       []Failure // all, for the chart
}

type windowKey struct {
	entity string
	start  int64
}

// measure checks what landed against what was sent.
func (s *scenarioRun) measure(rows []ResultRow, files int, dlq []DeadLetter, alerts []ReceivedAlert, rep *Report) *ScenarioReport {
	sr := &ScenarioReport{Name: s.name, Stream: s.stream, Published: len(s.sent), Files: files, PerSecond: s.perSec, OtherDLQ: map[string]int{},
		OnSchedule: s.pace.onTime, MaxLag: s.pace.maxLag, lagSeries: s.pace.lags}
	if d := rep.PublishEnded.Sub(rep.Started).Seconds(); d > 0 {
		sr.PublishRate = float64(len(s.sent)) / d
	}
	latest := FinalRows(rows)
	counts := FinalCounts(latest)
	sr.Rows = len(counts)
	actual := map[windowKey]float64{}
	// A window is closed once its shard's watermark passed its end; the
	// newest window end among a shard's results proves how far that went.
	// Shards close windows independently (an idle shard's watermark moves
	// with processing time), so the bound is per shard.
	maxEnd := map[int]time.Time{}
	for _, r := range latest {
		k := windowKey{r.Entity, r.WindowStart.UnixNano()}
		actual[k] = max(actual[k], counts[r.ResultID])
		if sh := s.shardOf(r.Entity); r.WindowEnd.After(maxEnd[sh]) {
			maxEnd[sh] = r.WindowEnd
		}
		sr.Scores = append(sr.Scores, r.Score)
		if at, ok := s.pace.carried(r.WindowEnd); ok && !r.Landed.IsZero() {
			sr.s3Series = append(sr.s3Series, point{r.Landed, r.Landed.Sub(at).Seconds()})
		}
	}
	size := s.window.Size.D()
	expected := map[windowKey]float64{}
	for _, e := range s.sent {
		if e.late {
			sr.LateSent++
			continue
		}
		for _, ws := range windowsOf(s.window, e.at) {
			expected[windowKey{e.key, ws.UnixNano()}]++
		}
	}
	matched := map[windowKey]bool{}
	for k, n := range expected {
		end := time.Unix(0, k.start).Add(size)
		if end.After(maxEnd[s.shardOf(k.entity)]) {
			continue
		}
		sr.ClosedWindows++
		if actual[k] == n {
			sr.MatchedWindows++
			matched[k] = true
		} else if len(sr.Mismatches) < 10 {
			sr.Mismatches = append(sr.Mismatches, fmt.Sprintf("%s [%s, %s): %v counted, %v sent",
				k.entity, time.Unix(0, k.start).UTC().Format(time.RFC3339), end.UTC().Format(time.TimeOnly), actual[k], n))
		}
	}
	for k, n := range actual {
		if _, ok := expected[k]; !ok && n > 0 && len(sr.Mismatches) < 10 {
			sr.Mismatches = append(sr.Mismatches, fmt.Sprintf("%s window at %s: %v counted, none sent", k.entity, time.Unix(0, k.start).UTC().Format(time.RFC3339), n))
		}
	}
	for _, e := range s.sent {
		if e.late {
			continue
		}
		open, ok := false, true
		for _, ws := range windowsOf(s.window, e.at) {
			if ws.Add(size).After(maxEnd[s.shardOf(e.key)]) {
				open = true
			} else if !matched[windowKey{e.key, ws.UnixNano()}] {
				ok = false
			}
		}
		switch {
		case !ok:
			sr.Unaccounted++
		case open:
			sr.Held++
		default:
			sr.Scored++
		}
	}
	seen := map[string]bool{}
	for _, d := range dlq {
		if d.Stream != s.stream {
			continue
		}
		id := d.Shard + "/" + d.Position
		if seen[id] {
			continue // dead-lettered again after a replay
		}
		seen[id] = true
		if d.Reason == "late" {
			sr.LateDLQ++
		} else {
			sr.OtherDLQ[d.Reason]++
		}
	}
	if sr.LateDLQ < sr.LateSent {
		sr.Unaccounted += sr.LateSent - sr.LateDLQ
	}

	// An alert is delivered at least once: after a failover the new owner
	// replays from the checkpoint and may send again what the old one had
	// sent. Latency is the first delivery's; the repeats are counted.
	type alertKey struct {
		rule, state, entity string
		end                 int64
	}
	first := map[alertKey]ReceivedAlert{}
	for _, a := range alerts {
		if a.Stream != s.stream || a.IsDrift() {
			continue
		}
		k := alertKey{a.Rule, a.State, a.Entity, a.WindowEnd.UnixNano()}
		if f, ok := first[k]; ok {
			sr.AlertRepeats++
			if !a.Received.Before(f.Received) {
				continue
			}
		}
		first[k] = a
	}
	var alertLat []time.Duration
	for _, a := range first {
		at, ok := s.pace.carried(a.WindowEnd)
		if !ok {
			continue
		}
		d := a.Received.Sub(at)
		alertLat = append(alertLat, d)
		sr.alertSeries = append(sr.alertSeries, point{a.Received, d.Seconds()})
	}
	sr.AlertLatency = percentiles(alertLat)
	var s3Lat []time.Duration
	for _, p := range sr.s3Series {
		s3Lat = append(s3Lat, time.Duration(p.v*float64(time.Second)))
	}
	sr.S3Latency = percentiles(s3Lat)
	if s.failures != nil {
		sr.Detection = detect(s.failures, alerts, s.stream, rep.PublishEnded)
	}
	if s.cfg != nil {
		if drift := driftAlertsOf(s.cfg, alerts); s.shift != nil || len(drift) > 0 {
			sr.Drift = driftReport(s.shift, featureFields(s.cfg), drift, rep.Started, rep.PublishEnded)
		}
	}
	return sr
}

// FinalRows applies the readers' rule (docs/sinks.md): the rows that
// together hold each window's events, keyed so that a window's parts stay
// apart. A window's whole rows (partial "") give one final row, keyed by
// result_id: the newest update row if late data revised the window,
// otherwise its first row (a replay after a failover may rebuild a window
// from only the events after the checkpoint; that row comes later and is
// not an update, so it loses). Rows of a key evicted while the window was
// open (partial "evicted") are each final, once per part (partial_id).
// Rows of late events for a window whose key's earlier state was evicted
// (partial "late") follow the whole-row rule within their part. A window's
// count is the sum over its result_id's final rows (FinalCounts).
func FinalRows(rows []ResultRow) map[string]ResultRow {
	final := map[string]ResultRow{}
	for _, r := range rows {
		key := r.ResultID
		if r.Partial != "" {
			key += "|" + r.Partial + "|" + r.PartialID
		}
		old, ok := final[key]
		switch {
		case !ok:
			final[key] = r
		case r.Partial == "evicted":
			// one row per part: a repeat of it is the same part
		case r.Update && (!old.Update || r.Processing.After(old.Processing)):
			final[key] = r
		case !r.Update && !old.Update && r.Processing.Before(old.Processing):
			final[key] = r
		}
	}
	return final
}

// FinalCounts sums each result's final rows' counts (its parts included).
func FinalCounts(final map[string]ResultRow) map[string]float64 {
	out := map[string]float64{}
	for _, r := range final {
		out[r.ResultID] += r.Count
	}
	return out
}

func detect(truth []Failure, alerts []ReceivedAlert, stream string, end time.Time) *Detection {
	// Every machine the generator degrades is a true positive to alert on,
	// including those whose failure comes after the run ends; recall counts
	// the failures that happened within the run.
	failAt := map[string]time.Time{}
	mode := map[string]FailureMode{}
	for _, f := range truth {
		failAt[f.Machine] = f.At
		mode[f.Machine] = f.Mode
	}
	firstAlert := map[string]ReceivedAlert{}
	for _, a := range alerts {
		if a.Stream != stream || a.State == "resolved" || a.IsDrift() {
			continue
		}
		if f, ok := firstAlert[a.Entity]; !ok || a.Received.Before(f.Received) {
			firstAlert[a.Entity] = a
		}
	}
	first := map[string]time.Time{}
	for e, a := range firstAlert {
		first[e] = a.Received
	}
	d := &Detection{Alerted: len(first), truth: truth}
	for _, f := range truth {
		if !f.At.After(end) {
			d.Failing++
		}
	}
	caught := 0
	for e, t := range first {
		at, failing := failAt[e]
		switch {
		case !failing:
			d.FalsePositives++
			a := firstAlert[e]
			d.FalseAlarms = append(d.FalseAlarms, fmt.Sprintf("%s: window [%s, %s) scored %.2f",
				e, a.WindowStart.UTC().Format(time.TimeOnly), a.WindowEnd.UTC().Format(time.TimeOnly), a.Score))
		case t.Before(at):
			caught++
			if top := firstAlert[e].TopFeatures; len(top) > 0 {
				d.Explainable++
				if drives(mode[e], top[0]) {
					d.Explained++
				}
			}
			if !at.After(end) {
				d.TruePositives++
				d.leads = append(d.leads, at.Sub(t))
			}
		}
		// An alert after the failure is a miss, not a false alarm.
	}
	if caught+d.FalsePositives > 0 {
		d.Precision = float64(caught) / float64(caught+d.FalsePositives)
	}
	if d.Failing > 0 {
		d.Recall = float64(d.TruePositives) / float64(d.Failing)
	}
	if len(d.leads) > 0 {
		l := sortedTimes(d.leads)
		d.MedianLead, d.MinLead = l[len(l)/2], l[0]
	}
	return d
}

// drives reports whether a failure mode moves the reading a feature is
// computed from. Features are matched by name prefix, so this relies on the
// example configs naming features after their reading (vibration_max).
func drives(m FailureMode, feature string) bool {
	var signals []string
	switch m {
	case BearingWear:
		signals = []string{"vibration", "current"}
	case Overheating:
		signals = []string{"temperature", "pressure"}
	}
	for _, s := range signals {
		if strings.HasPrefix(feature, s) {
			return true
		}
	}
	return false
}

// secondsSeries turns per-second counts into sorted x/y.
func secondsSeries(m map[int64]int) ([]string, []int) {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	xs := make([]string, len(keys))
	ys := make([]int, len(keys))
	for i, k := range keys {
		xs[i] = time.Unix(k, 0).UTC().Format(time.TimeOnly)
		ys[i] = m[k]
	}
	return xs, ys
}

func sortPoints(ps []point) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].at.Before(ps[j].at) })
}
