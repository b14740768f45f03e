package retrain

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newTestTrigger(t testing.TB, c Config) *Trigger {
	t.Helper()
	if c.Pipeline == "" {
		c.Pipeline = "factory"
	}
	tr, err := NewTrigger(c)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// moved is tr's state as another process would get it: encoded, decoded
// and restored into a new trigger of configuration c.
func moved(t *testing.T, tr *Trigger, c Config) *Trigger {
	t.Helper()
	body, err := EncodeState(tr.State())
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeState(body, "trigger.json")
	if err != nil {
		t.Fatal(err)
	}
	next := newTestTrigger(t, c)
	if err := next.Restore(s); err != nil {
		t.Fatal(err)
	}
	return next
}

func mustOutcome(t *testing.T, d Decision, err error, want Outcome, run int) Decision {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != want || d.Run != run {
		t.Fatalf("decision %s run %d (%s), want %s run %d", d.Outcome, d.Run, d.Why, want, run)
	}
	return d
}

// A run in progress moves with the state: the new trigger asks at the
// period the old one would have, with the whole run as evidence.
func TestRestoredRunCompletesOnTime(t *testing.T) {
	c := Config{DriftPeriods: 3}
	tr := newTestTrigger(t, c)
	d1, err := tr.Drift(drift("w", 1, true))
	mustOutcome(t, d1, err, Building, 1)
	d2, err := tr.Drift(drift("w", 2, true))
	mustOutcome(t, d2, err, Building, 2)

	next := moved(t, tr, c)
	d3, err := next.Drift(drift("w", 3, true))
	d := mustOutcome(t, d3, err, Requested, 3)
	if got := d.Requests[0].Periods; len(got) != 3 || !got[0].Start.Equal(hour(0)) || got[0].Violations != drift("w", 1, true).Violations {
		t.Errorf("request's periods %+v, want hours 1 to 3 with their violations", got)
	}
	// The same request as the old trigger would have made: a consumer
	// dedupes a repeat by it.
	same := newTestTrigger(t, c)
	for h := 1; h <= 3; h++ {
		dd, err := same.Drift(drift("w", h, true))
		if err != nil {
			t.Fatal(err)
		}
		if h == 3 && dd.Requests[0].RequestID != d.Requests[0].RequestID {
			t.Errorf("request id %s after the move, %s without it", d.Requests[0].RequestID, dd.Requests[0].RequestID)
		}
	}
}

// A cooldown moves with the state, for the run that asked and for every
// other run of the scorer asked for.
func TestRestoredCooldownHolds(t *testing.T) {
	c := Config{DriftPeriods: 1, QualityPeriods: 1}
	tr := newTestTrigger(t, c)
	d, err := tr.Drift(drift("w", 1, true))
	mustOutcome(t, d, err, Requested, 1)

	next := moved(t, tr, c)
	d, err = next.Drift(drift("w", 2, true))
	mustOutcome(t, d, err, CoolingDown, 1)
	// The scorer's own quality is held too: it was asked for by the drift.
	d, err = next.Quality(quality("failure", "v1", 2, true))
	mustOutcome(t, d, err, CoolingDown, 1)
	// A day after the request, it asks again.
	d, err = next.Drift(drift("w", 25, true))
	mustOutcome(t, d, err, Requested, 1)
	// A stale verdict stays stale after a move.
	next = moved(t, next, c)
	d, err = next.Drift(drift("w", 24, true))
	mustOutcome(t, d, err, Stale, 0)
}

// A state is encoded the same whatever the order it was built in, so the
// pipeline can tell an unchanged state from a changed one by its bytes.
func TestStateIsStable(t *testing.T) {
	a, b := newTestTrigger(t, Config{}), newTestTrigger(t, Config{})
	for _, w := range []string{"w1", "w2", "w3"} {
		if _, err := a.Drift(drift(w, 1, true)); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []string{"w3", "w1", "w2"} {
		if _, err := b.Drift(drift(w, 1, true)); err != nil {
			t.Fatal(err)
		}
	}
	ea, _ := EncodeState(a.State())
	eb, _ := EncodeState(b.State())
	if !bytes.Equal(ea, eb) {
		t.Errorf("states differ by feeding order:\n%s\n%s", ea, eb)
	}
	if !reflect.DeepEqual(a.State(), moved(t, a, Config{}).State()) {
		t.Error("a restored state is not the state restored")
	}
}

// A rule of fewer periods than the state holds keeps the newest periods.
func TestRestoreTrimsToTheRule(t *testing.T) {
	tr := newTestTrigger(t, Config{DriftPeriods: 5})
	for h := 1; h <= 4; h++ {
		if _, err := tr.Drift(drift("w", h, true)); err != nil {
			t.Fatal(err)
		}
	}
	next := moved(t, tr, Config{DriftPeriods: 2})
	if p := next.State().Runs[0].Periods; len(p) != 2 || !p[1].End.Equal(hour(4)) {
		t.Fatalf("restored periods %+v, want hours 3 and 4", p)
	}
	d, err := next.Drift(drift("w", 5, true))
	mustOutcome(t, d, err, Requested, 2)
}

func TestBadStateNamesTheField(t *testing.T) {
	good := func() State {
		tr := newTestTrigger(t, Config{})
		if _, err := tr.Drift(drift("w", 1, true)); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Drift(drift("w", 2, true)); err != nil {
			t.Fatal(err)
		}
		tr.asked["failure"] = hour(2)
		return tr.State()
	}
	many := make([]PeriodState, MaxPeriods+1)
	for i := range many {
		many[i] = PeriodState{Start: hour(i), End: hour(i + 1), Bad: true}
	}
	cases := []struct {
		name, want string
		edit       func(*State)
	}{
		{"version", "version: 2 is not one this build reads", func(s *State) { s.Version = 2 }},
		{"pipeline", `pipeline: "other" is not this trigger's`, func(s *State) { s.Pipeline = "other" }},
		{"reason", `runs[0].reason: "fraud"`, func(s *State) { s.Runs[0].Reason = "fraud" }},
		{"name", "runs[0].name: required", func(s *State) { s.Runs[0].Name = "" }},
		{"duplicate", "runs[1]: a second run of drift w", func(s *State) { s.Runs = append(s.Runs, s.Runs[0]) }},
		{"too long", "runs[0].periods: 49, over 48", func(s *State) { s.Runs[0].Periods = many }},
		{"order", "runs[0].periods[1]: ends at", func(s *State) { s.Runs[0].Periods[1] = s.Runs[0].Periods[0] }},
		{"empty period", "runs[0].periods[0]: start", func(s *State) { s.Runs[0].Periods[0].End = s.Runs[0].Periods[0].Start }},
		{"violations", "runs[0].periods[0].violations", func(s *State) { s.Runs[0].Periods[0].Violations = "/tmp/x" }},
		{"asked scorer", "asked[0].scorer: required", func(s *State) { s.Asked[0].Scorer = "" }},
		{"asked at", "asked[0].at: required", func(s *State) { s.Asked[0].At = time.Time{} }},
		{"asked twice", `asked[1].scorer: "failure" is listed twice`, func(s *State) { s.Asked = append(s.Asked, s.Asked[0]) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestTrigger(t, Config{})
			if _, err := tr.Drift(drift("keep", 1, true)); err != nil {
				t.Fatal(err)
			}
			before := tr.State()
			s := good()
			tc.edit(&s)
			err := tr.Restore(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore: %v, want an error with %q", err, tc.want)
			}
			if !reflect.DeepEqual(tr.State(), before) {
				t.Error("a refused state changed the trigger")
			}
		})
	}
}

func TestDecodeStateRefuses(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"not JSON", `{"version": 1,`, "trigger.json: not JSON"},
		{"no version", `{"pipeline": "factory"}`, "version: missing"},
		{"newer version", `{"version": 2, "pipeline": "factory", "later": true}`, "version: 2 is not one this build reads (1)"},
		{"unknown field", `{"version": 1, "pipeline": "factory", "runs": [{"reason": "drift", "name": "w", "period": []}]}`, `unknown field "period"`},
		{"two documents", `{"version": 1} {"version": 1}`, "not JSON: invalid character"},
		{"too big", `{"version": 1, "pipeline": "` + strings.Repeat("x", MaxStateBytes) + `"}`, "over the"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeState([]byte(tc.body), "trigger.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "trigger.json") {
				t.Fatalf("DecodeState: %v, want an error naming trigger.json with %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeState: whatever the file holds, decoding and restoring
// either refuse it or give a trigger whose state is bounded and survives
// another round trip unchanged.
func FuzzDecodeState(f *testing.F) {
	tr := newTestTrigger(f, Config{})
	for h := 1; h <= 3; h++ {
		_, _ = tr.Drift(drift("w", h, true))
		_, _ = tr.Quality(quality("failure", "v1", h, h > 1))
	}
	seed, _ := EncodeState(tr.State())
	f.Add(seed)
	f.Add([]byte(`{"version":1,"pipeline":"factory","runs":[],"asked":[]}`))
	f.Add([]byte(`{"version":1,"pipeline":"factory","runs":[{"reason":"quality","name":"s","periods":[{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T01:00:00Z","bad":true}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := DecodeState(body, "fuzz.json")
		if err != nil {
			return
		}
		got := newTestTrigger(t, Config{})
		if err := got.Restore(s); err != nil {
			return
		}
		st := got.State()
		for _, r := range st.Runs {
			if len(r.Periods) > DefaultDriftPeriods {
				t.Fatalf("run %s %s keeps %d periods, over the rule's", r.Reason, r.Name, len(r.Periods))
			}
		}
		again, err := EncodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := DecodeState(again, "again.json")
		if err != nil {
			t.Fatalf("a restored state does not decode: %v\n%s", err, again)
		}
		next := newTestTrigger(t, Config{})
		if err := next.Restore(s2); err != nil {
			t.Fatalf("a restored state does not restore: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(next.State(), st) {
			t.Fatalf("state changed on a round trip:\n%s", again)
		}
	})
}
