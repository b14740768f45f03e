package sinks

// Period rules: drift and model-quality rules judge a monitor's verdicts,
// one report per period, with the same hysteresis as score rules (a
// feature or a metric in place of an entity, the period's end in place of
// a window's).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// periodItem is one verdict of a period: a drift feature or a quality
// metric, and whether it is bad (drifted, violated).
type periodItem struct {
	name string
	bad  bool
}

// periodReport is a drift or quality report, as the rules judge it.
type periodReport struct {
	name              string // for logs and errors
	pipeline, subject string // the keys' stream and window parts
	end               time.Time
	items             []periodItem
	rule              func(*AlertRule) bool // the rules that judge it
	// alert builds the alert of a rule and state about the items at idx.
	alert func(r *AlertRule, state string, idx []int) Alert
}

// judgePeriod judges a period's verdicts with its rules and publishes what
// they say: per rule at most one firing alert (every item that fired or
// escalated) and one resolved alert (every item that cleared). On an error
// nothing of the report is remembered, so the caller may send it again; a
// report for a period no later than one already judged changes nothing.
// Reports are judged one at a time.
func (h *alertHandler) judgePeriod(ctx context.Context, rep periodReport) error {
	h.driftMu.Lock()
	defer h.driftMu.Unlock()
	// The rules judge copies of the state, committed once published.
	type verdict struct {
		k  alertKey
		st alertState
	}
	var next []verdict
	var out []Alert
	stale := 0
	h.mu.Lock()
	for ri := range h.o.Rules {
		r := &h.o.Rules[ri]
		if !rep.rule(r) {
			continue
		}
		var fired, cleared []int
		for i, it := range rep.items {
			k := alertKey{rule: r.Name, stream: rep.pipeline, window: rep.subject, entity: it.name}
			var st alertState
			if p := h.state[k]; p != nil {
				st = *p
			}
			if !st.judged.IsZero() && !rep.end.After(st.judged) {
				stale++ // counting a period twice would break "N consecutive periods"
				continue
			}
			level := -1 // a period rule has one level: its lowest
			if it.bad {
				level = 0
			}
			switch st.advance(r, level, rep.end) {
			case StateFiring:
				fired = append(fired, i)
			case StateResolved:
				cleared = append(cleared, i)
			}
			st.judged = rep.end
			next = append(next, verdict{k, st})
		}
		if len(fired) > 0 {
			out = append(out, rep.alert(r, StateFiring, fired))
		}
		if len(cleared) > 0 {
			out = append(out, rep.alert(r, StateResolved, cleared))
		}
	}
	h.mu.Unlock()
	if stale > 0 {
		h.o.Logger.Warn("report for a period already judged; its verdicts are ignored", "sink", "alerts", "report", rep.name, "items", stale)
	}
	if err := h.publish(ctx, out, nil); err != nil {
		return fmt.Errorf("sinks: report %s: %w", rep.name, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, j := range next {
		h.clock++
		j.st.seen = h.clock
		h.state[j.k] = &j.st
	}
	h.evict()
	return nil
}

// periodSubject names what a period alert is about (a monitored window,
// or a scorer's model version for quality), "" for other alerts.
func (a *Alert) periodSubject() string {
	switch {
	case a.Window != "":
		return a.Window
	case a.Scorer != "":
		return "quality/" + a.Scorer + "/" + a.Model
	}
	return ""
}

// periodGroup is a period alert's FIFO group, "" for other alerts: one
// monitored window's (or scorer's) alerts keep their order.
func (a *Alert) periodGroup() string {
	if s := a.periodSubject(); s != "" {
		return a.Pipeline + "/" + s
	}
	return ""
}

// dedupID is the FIFO deduplication id: a hash of rule, entity (or
// pipeline and period subject), window (or period) and state, so a replay
// does not alert twice.
func (a *Alert) dedupID() string {
	parts := []string{a.Rule, a.Stream, a.Entity, strconv.FormatInt(a.WindowStart.UnixNano(), 10), strconv.FormatInt(a.WindowEnd.UnixNano(), 10), a.State, a.Severity}
	if s := a.periodSubject(); s != "" {
		parts = []string{"drift", a.Rule, a.Pipeline, s, strconv.FormatInt(a.PeriodStart.UnixNano(), 10), strconv.FormatInt(a.PeriodEnd.UnixNano(), 10), a.State, a.Severity}
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return hex.EncodeToString(h[:])
}
