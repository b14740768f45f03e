package loadtest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/sinks"
)

// DriftReport is what the drift alerts of one scenario's pipeline said,
// against the calibration shift the generator made (if any).
type DriftReport struct {
	// Shift is the ground truth; nil when nothing was shifted, so that
	// every drift alert is a false alarm.
	Shift *ShiftTruth
	// ShiftOffset is the shift's start after the run's start.
	ShiftOffset time.Duration
	// Features are the window features computed from the shifted field.
	Features []string

	// Firing and Resolved count distinct drift alerts (by rule, window,
	// period and state); Repeats are deliveries of one already counted.
	Firing, Resolved, Repeats int

	// First is the first firing drift alert received, for a period that
	// ended after the shift began, naming a feature computed from the
	// shifted field; nil when none came. FirstNamed are those features.
	First      *ReceivedAlert
	FirstNamed []sinks.DriftFeature
	// ReceivedDelay is from the shift's start to when First reached the
	// subscribed queue (wall clock); PeriodDelay is from the shift's start
	// to the end of First's period (event time: how much shifted data the
	// monitor could have seen). HasPeriod says First carried a period end.
	ReceivedDelay, PeriodDelay time.Duration
	HasPeriod                  bool

	// Untouched describes each firing drift alert that named a window
	// feature not computed from the shifted field (with nothing shifted:
	// any window feature); UntouchedFeatures are those features, sorted.
	// Both should be empty.
	Untouched         []string
	UntouchedFeatures []string
	// Early describes each firing drift alert for a period that ended by
	// the time the shift began (nothing shifted in it): a false alarm.
	Early []string
	// After describes each firing drift alert for a period that began
	// after the traffic ended: its windows are the partial last ones a
	// stopped stream leaves, so it counts neither way.
	After []string
	// Other are named features that are not the window's (the model's
	// score columns): the shift may rightly move them, so they count
	// neither way.
	Other []string

	timeline []driftPoint // for the chart: each named feature of each firing alert
}

type driftPoint struct {
	received, periodEnd time.Time
	feature             string
	shifted             bool
}

// driftAlertKey identifies one drift alert across deliveries.
type driftAlertKey struct {
	rule, state, pipeline, window string
	start, end                    int64
}

// IsDrift says whether the alert is the monitor's, about a monitored
// window's period, rather than a score alert about an entity: as for the
// alert sink, a drift alert is one that names its window.
func (a ReceivedAlert) IsDrift() bool { return a.Entity == "" && a.Window != "" }

// named is what a firing drift alert flags as drifted.
func (a ReceivedAlert) named() []sinks.DriftFeature {
	var out []sinks.DriftFeature
	for _, f := range a.Drift {
		if f.Drifted {
			out = append(out, f)
		}
	}
	return out
}

// driftAlertsOf keeps the drift alerts about cfg's pipeline: those naming
// its pipeline, or, when an alert names none, one of its windows.
func driftAlertsOf(cfg *config.Config, alerts []ReceivedAlert) []ReceivedAlert {
	var out []ReceivedAlert
	for _, a := range alerts {
		if !a.IsDrift() {
			continue
		}
		if a.Pipeline == cfg.Pipeline || a.Pipeline == "" && slices.ContainsFunc(cfg.Windows, func(w config.Window) bool { return w.Name == a.Window }) {
			out = append(out, a)
		}
	}
	return out
}

// featureFields maps each window's features to the reading they are
// computed from ("" for a count).
func featureFields(cfg *config.Config) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, w := range cfg.Windows {
		m := map[string]string{}
		for _, f := range w.Features {
			m[f.Name] = f.Field
		}
		out[w.Name] = m
	}
	return out
}

// driftReport judges a pipeline's drift alerts against the shift (nil:
// none). fields maps window → feature → the field it is computed from;
// runStart places the shift in the run.
func driftReport(shift *ShiftTruth, fields map[string]map[string]string, alerts []ReceivedAlert, runStart, trafficEnd time.Time) *DriftReport {
	d := &DriftReport{Shift: shift}
	if shift != nil {
		d.ShiftOffset = shift.Start.Sub(runStart)
		seen := map[string]bool{}
		for _, w := range sortedKeys(fields) {
			for _, f := range sortedKeys(fields[w]) {
				if fields[w][f] == shift.Field && !seen[f] {
					seen[f] = true
					d.Features = append(d.Features, f)
				}
			}
		}
	}
	first := map[driftAlertKey]ReceivedAlert{}
	var order []driftAlertKey
	for _, a := range alerts {
		k := driftAlertKey{a.Rule, a.State, a.Pipeline, a.Window, a.PeriodStart.UnixNano(), a.PeriodEnd.UnixNano()}
		f, ok := first[k]
		if ok {
			d.Repeats++
			if !a.Received.Before(f.Received) {
				continue
			}
		} else {
			order = append(order, k)
		}
		first[k] = a
	}
	untouched, other := map[string]bool{}, map[string]bool{}
	for _, k := range order {
		a := first[k]
		if a.State == "resolved" {
			d.Resolved++
			continue
		}
		d.Firing++
		if !trafficEnd.IsZero() && !a.PeriodStart.IsZero() && !a.PeriodStart.Before(trafficEnd) {
			d.After = append(d.After, describeDrift(a))
			continue
		}
		// A period that ended by the shift's start held no shifted
		// reading; without a period, the alert's arrival is all we know.
		before := shift == nil
		if shift != nil {
			end := a.PeriodEnd
			if end.IsZero() {
				end = a.Received
			}
			before = !end.After(shift.Start)
		}
		var mine []sinks.DriftFeature
		var wrong []string
		for _, f := range a.named() {
			field, ok := fields[a.Window][f.Feature]
			hit := ok && shift != nil && field == shift.Field
			d.timeline = append(d.timeline, driftPoint{a.Received, a.PeriodEnd, f.Feature, hit})
			switch {
			case !ok:
				other[f.Feature] = true
			case hit:
				mine = append(mine, f)
			default:
				wrong = append(wrong, f.Feature)
				untouched[f.Feature] = true
			}
		}
		if len(wrong) > 0 {
			d.Untouched = append(d.Untouched, fmt.Sprintf("%s: %s", describeDrift(a), strings.Join(wrong, ", ")))
		}
		if shift != nil && before {
			d.Early = append(d.Early, describeDrift(a))
		}
		if shift != nil && !before && len(mine) > 0 && (d.First == nil || a.Received.Before(d.First.Received)) {
			d.First, d.FirstNamed = &a, mine
		}
	}
	d.UntouchedFeatures, d.Other = sortedKeys(untouched), sortedKeys(other)
	if d.First != nil {
		d.ReceivedDelay = d.First.Received.Sub(shift.Start)
		if !d.First.PeriodEnd.IsZero() {
			d.HasPeriod = true
			d.PeriodDelay = d.First.PeriodEnd.Sub(shift.Start)
		}
	}
	return d
}

// describeDrift names a drift alert for a list: rule, window and period.
func describeDrift(a ReceivedAlert) string {
	s := a.Rule + " on " + a.Window
	if !a.PeriodEnd.IsZero() {
		s += fmt.Sprintf(" period [%s, %s)", a.PeriodStart.UTC().Format(time.TimeOnly), a.PeriodEnd.UTC().Format(time.TimeOnly))
	} else {
		s += " received " + a.Received.UTC().Format(time.TimeOnly)
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// driftClaims are the lines of a scenario's Drift section, in the order
// the summary and the report show them.
func (d *DriftReport) claims() []claim {
	var cs []claim
	if d.Shift == nil {
		cs = append(cs, claim{"shift", "none: nothing in this scenario was shifted, so every drift alert is a false alarm", false})
	} else {
		sh := d.Shift
		cs = append(cs, claim{"shift", fmt.Sprintf("%s %+.4g %s on %d of %d machines from %s (%s into the run); its features: %s",
			sh.Field, sh.By, SensorUnit(sh.Field), len(sh.Machines), sh.FleetSize, sh.Start.UTC().Format("15:04:05.000"),
			roundS(d.ShiftOffset), orNone(d.Features)), false})
		if d.First == nil {
			cs = append(cs, claim{"first drift alert", fmt.Sprintf("none named a %s feature for a period after the shift", sh.Field), true})
		} else {
			v := fmt.Sprintf("received %s after the shift (on the queue)", roundS(d.ReceivedDelay))
			if d.HasPeriod {
				v += fmt.Sprintf("; its period [%s, %s) ended %s after the shift (event time)",
					d.First.PeriodStart.UTC().Format(time.TimeOnly), d.First.PeriodEnd.UTC().Format(time.TimeOnly), roundS(d.PeriodDelay))
			}
			var named []string
			for _, f := range d.FirstNamed {
				named = append(named, fmt.Sprintf("%s %s", f.Feature, distanceText(f)))
			}
			cs = append(cs, claim{"first drift alert", v + "; named " + strings.Join(named, ", "), false})
		}
	}
	un := "no drift alert named one"
	if len(d.Untouched) > 0 {
		un = fmt.Sprintf("%s named %s", alertsText(len(d.Untouched)), strings.Join(d.UntouchedFeatures, ", "))
	}
	cs = append(cs, claim{"untouched features", un, len(d.Untouched) > 0})
	if d.Shift != nil {
		early := "no drift alert for a period before the shift"
		if len(d.Early) > 0 {
			early = fmt.Sprintf("%s for periods that ended before the shift began (false alarms)", alertsText(len(d.Early)))
		}
		cs = append(cs, claim{"before the shift", early, len(d.Early) > 0})
	}
	all := fmt.Sprintf("%d firing, %d resolved", d.Firing, d.Resolved)
	if d.Repeats > 0 {
		all += fmt.Sprintf(", %d delivered again", d.Repeats)
	}
	if len(d.Other) > 0 {
		all += "; also named (not window features, not judged): " + strings.Join(d.Other, ", ")
	}
	if len(d.After) > 0 {
		all += fmt.Sprintf("; %s for periods after the traffic ended (the stream's partial last windows, not judged)", alertsText(len(d.After)))
	}
	return append(cs, claim{"drift alerts", all, false})
}

func distanceText(f sinks.DriftFeature) string {
	if math.IsNaN(f.Distance) {
		return "(no distance)"
	}
	if math.IsNaN(f.Threshold) {
		return fmt.Sprintf("(distance %.3f)", f.Distance)
	}
	return fmt.Sprintf("(distance %.3f, threshold %.3f)", f.Distance, f.Threshold)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none in the window"
	}
	return strings.Join(s, ", ")
}

func alertsText(n int) string {
	if n == 1 {
		return "1 drift alert"
	}
	return fmt.Sprintf("%d drift alerts", n)
}
