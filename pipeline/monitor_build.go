package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/sinks"
)

// monitoredBy returns the monitor entry of the window a scorer scores, if
// that scorer's results are the ones monitored.
func (p *Pipeline) monitoredBy(s config.Scorer) (config.MonitoredWindow, bool) {
	for _, mw := range p.cfg.Monitor.Windows {
		if mw.Window != s.Window {
			continue
		}
		if mw.Scorer == "" || mw.Scorer == s.Name {
			return mw, true
		}
	}
	return config.MonitoredWindow{}, false
}

// driftRules are the alert rules judging a monitored window's drift.
func (p *Pipeline) driftRules(window string) []sinks.AlertRule {
	return p.periodRules(func(r config.Rule) bool { return r.Drift == window }, func(r *sinks.AlertRule) { r.Drift = window })
}

// periodRules are the config's rules that of accepts, as the alert sink
// takes them; set makes each a drift or quality rule.
func (p *Pipeline) periodRules(of func(config.Rule) bool, set func(*sinks.AlertRule)) []sinks.AlertRule {
	var rules []sinks.AlertRule
	for _, r := range p.cfg.Alerts.Rules {
		if !of(r) {
			continue
		}
		ar := sinks.AlertRule{Name: r.Name, FireAfter: r.FireAfter, ClearAfter: r.ClearAfter, Cooldown: r.Cooldown.D(),
			Levels: []sinks.AlertLevel{{Severity: r.Severity, Threshold: r.Threshold}}}
		set(&ar)
		rules = append(rules, ar)
	}
	return rules
}

// buildMonitor starts the monitor of a scorer's results: it reads the
// baseline (a monitor without one has nothing to judge against, so a
// missing or broken baseline stops the build, naming the file).
func (p *Pipeline) buildMonitor(ctx context.Context, mw config.MonitoredWindow, s config.Scorer, stream string, c Clients, o Options, al *sinks.Alerts) (*monitorSink, error) {
	wp := p.pl.windows[s.Window]
	var s3c monitorS3
	if c.S3 != nil {
		s3c = c.S3
	}
	base, cons, err := dataset.LoadBaseline(ctx, c.S3, mw.Baseline)
	if err != nil {
		return nil, fmt.Errorf("pipeline: monitor of window %s: baseline: %w", mw.Window, err)
	}
	if s3c == nil {
		return nil, fmt.Errorf("pipeline: monitor of window %s: no S3 client", mw.Window)
	}
	period, settle, prefix := p.monitorTiming()
	worker := o.WorkerID
	if worker == "" {
		worker, _ = os.Hostname()
	}
	mc := monitorConfig{
		pipeline: p.cfg.Pipeline, window: mw.Window, stream: stream, scorer: s.Name, worker: worker,
		period: period, settle: settle, grace: wp.spec.OutOfOrderness + wp.spec.AllowedLateness,
		baseline: base, constraints: cons,
		store: &partStore{s3: s3c, bucket: p.cfg.Sinks.S3.Bucket, prefix: prefix + p.cfg.Pipeline + "/" + mw.Window + "/", period: period, run: runID()},
		obs:   p.obs, log: p.log.With("monitor", mw.Window), now: o.Now, retrain: p.retrain,
	}
	if al != nil && len(p.driftRules(mw.Window)) > 0 {
		mc.alerts = al
	}
	return newMonitorSink(mc), nil
}

func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// monitorTiming is the monitor section's period, settle time and prefix,
// the defaults filled in: one rule for the drift and quality monitors.
func (p *Pipeline) monitorTiming() (period, settle time.Duration, prefix string) {
	return MonitorTiming(p.cfg)
}

// MonitorTiming is the monitors' period, settle time and S3 prefix, with
// the defaults applied.
func MonitorTiming(cfg *config.Config) (period, settle time.Duration, prefix string) {
	m := cfg.Monitor
	period, settle, prefix = m.Period.D(), m.Settle.D(), m.Prefix
	if period <= 0 {
		period = DefaultMonitorPeriod
	}
	if settle <= 0 {
		settle = DefaultMonitorSettle
	}
	if prefix == "" {
		prefix = DefaultMonitorPrefix
	}
	return period, settle, prefix
}

// QualityPrefix is where, in sinks.s3.bucket, the quality monitor writes a
// scorer's verdicts: <monitor prefix>model-quality/<pipeline>/<scorer>/,
// one <period>/judgement.json per judged period.
func QualityPrefix(cfg *config.Config, scorer string) string {
	_, _, prefix := MonitorTiming(cfg)
	return prefix + "model-quality/" + cfg.Pipeline + "/" + scorer + "/"
}
