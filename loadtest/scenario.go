package loadtest

import (
	"fmt"
	"time"
)

// The scenarios below are the traffic the demo publishes and the example
// models are trained on; keeping them in one place keeps the two in step.
//
// Production-like examples (examples/factory.yaml, examples/churn.yaml) use
// 5-minute hopping windows and daily windows. The demo (examples/demo/) must
// show failures, alerts and files within a few minutes, so its fleet runs on
// a compressed clock: readings every 250 ms, 30-second windows sliding by
// 10 s, and a degradation of two minutes, long enough for the model to see it
// coming well before the failure. The churn demo replays three weeks of
// history, compressed into the first part of the run.

// FactoryDemoLead is how long a demo machine degrades before it fails.
const FactoryDemoLead = 2 * time.Minute

// FactoryDemoFleet is the fleet `make demo` publishes in real time for run
// long: a quarter of the machines fail, evenly over the second half of the
// run but not before 50 s (the first windows close at 10 s and 20 s, an
// alert needs two, and a worker killed early in a short run delays its
// shards' alerts by its failover). A machine that fails before FactoryDemoLead has passed
// was already degrading when the run began, as in any fleet watched from
// some day on: its first windows show the drift under way.
func FactoryDemoFleet(start time.Time, run time.Duration, seed uint64) FleetConfig {
	from := max(run/2, 50*time.Second)
	return FleetConfig{
		Machines: 40, Interval: 250 * time.Millisecond, Start: start,
		FailingFraction: 0.25, FailFrom: from, FailTo: max(run, from),
		DegradeLead: FactoryDemoLead,
		DropoutRate: 0.02, DuplicateRate: 0.005,
		OutOfOrderRate: 0.05, MaxDisorder: time.Second,
		// A minute late is past every window's end plus its 20 s allowed
		// lateness, and still arrives within a short run.
		LateRate: 0.002, LateBy: time.Minute,
		Seed: seed,
	}
}

// FactoryDemoTraining is traffic for training and judging the demo model:
// many runs shaped like the live ones (75 s, 120 s and 180 s in turn: the
// end-to-end test's, the demo's and a longer one), one after another with
// a minute between them so their last windows close by idle timeout as they
// do live. Each run has machines of its own (prefix rNN-) and a seed derived
// from seed that no live run uses, so a model trained on seed 1 never sees
// the demo's own fleet. The model thus learns the windows a live run makes:
// partial ones where the stream starts and stops, machines already
// degrading when it begins.
func FactoryDemoTraining(start time.Time, seed uint64) (Source, []Failure, time.Time) {
	const runs = 60
	lengths := []time.Duration{75 * time.Second, 120 * time.Second, 180 * time.Second}
	var src multiSource
	var truth []Failure
	at := start
	for i := range runs {
		d := lengths[i%len(lengths)]
		c := FactoryDemoFleet(at, d, seed<<32|uint64(i))
		c.IDPrefix = fmt.Sprintf("r%02d-", i)
		c.Stop = at.Add(d)
		f := NewFleet(c)
		src = append(src, f)
		truth = append(truth, f.Truth()...)
		at = at.Add(d + time.Minute)
	}
	return src, truth, at
}

// multiSource runs several sources over one clock.
type multiSource []Source

func (m multiSource) Until(t time.Time, emit func(Event)) {
	for _, s := range m {
		s.Until(t, emit)
	}
}

func (m multiSource) Drain(emit func(Event)) {
	for _, s := range m {
		s.Drain(emit)
	}
}

// FactoryTraining is the production-like fleet: a reading a second,
// degradation over 10 minutes, failures spread over six hours.
func FactoryTraining(start time.Time, seed uint64) (FleetConfig, time.Duration) {
	return FleetConfig{
		Machines: 100, Interval: time.Second, Start: start,
		FailingFraction: 0.3, FailFrom: 30 * time.Minute, FailTo: 330 * time.Minute,
		DegradeLead: 10 * time.Minute,
		DropoutRate: 0.02, DuplicateRate: 0.005,
		OutOfOrderRate: 0.05, MaxDisorder: 5 * time.Second,
		Seed: seed,
	}, 6 * time.Hour
}

// ChurnHistory is the app population: three weeks of events, a fifth of the
// users churning in the second half after tapering for a week.
func ChurnHistory(end time.Time, users int, seed uint64) AppConfig {
	d := 21 * 24 * time.Hour
	return AppConfig{
		Users: users, Start: end.Add(-d).Truncate(24 * time.Hour), Duration: d,
		ChurnFraction: 0.2, TaperLead: 7 * 24 * time.Hour, SessionsPerDay: 3, Seed: seed,
	}
}

// Horizons: a window is labelled positive when the failure (churn) comes
// within this long after the window's end.
const (
	FactoryDemoHorizon = 90 * time.Second
	FactoryHorizon     = 5 * time.Minute
	ChurnHorizon       = 10 * 24 * time.Hour
)
