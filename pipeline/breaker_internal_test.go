package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/scorer"
)

// A breaker that opens fires an alert; one that closes resolves it; and one
// evicted while open (a multi-model target past max_targets) resolves it
// too, saying why, since no later change of that breaker would.
func TestBreakerAlerts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ev          scorer.BreakerEvent
		state, sev  string
		msgContains string
	}{
		{"opens", scorer.BreakerEvent{Endpoint: "ep@m-a", Target: "m-a", From: scorer.BreakerClosed, To: scorer.BreakerOpen,
			LastError: errors.New("model failed")}, "firing", "warning", "went from closed to open: model failed"},
		{"closes", scorer.BreakerEvent{Endpoint: "ep", From: scorer.BreakerHalfOpen, To: scorer.BreakerClosed},
			"resolved", "info", "went from half-open to closed"},
		{"evicted while open", scorer.BreakerEvent{Endpoint: "ep@m-a", Target: "m-a", From: scorer.BreakerOpen, To: scorer.BreakerClosed, Evicted: true},
			"resolved", "info", "was dropped while open (more target models than max_targets)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			al := breakerAlert("p", "s", tc.ev)
			if al.State != tc.state || al.Severity != tc.sev || al.Model != tc.ev.Endpoint || al.Stream != "s" || al.Rule != "circuit-breaker" {
				t.Errorf("alert %+v, want state %s, severity %s, model %s", al, tc.state, tc.sev, tc.ev.Endpoint)
			}
			if !strings.Contains(al.Message, tc.msgContains) {
				t.Errorf("message %q, want it to contain %q", al.Message, tc.msgContains)
			}
		})
	}
}
