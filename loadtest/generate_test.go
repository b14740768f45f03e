package loadtest

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

func fleetCfg() FleetConfig {
	return FleetConfig{
		Machines: 20, Interval: time.Second, Start: t0,
		FailingFraction: 0.2, FailFrom: 20 * time.Minute, FailTo: 40 * time.Minute, DegradeLead: 10 * time.Minute,
		DropoutRate: 0.02, DuplicateRate: 0.01, OutOfOrderRate: 0.05, LateRate: 0.005,
		MaxDisorder: 3 * time.Second, LateBy: 5 * time.Minute, Seed: 7,
	}
}

type reading struct {
	Machine string   `json:"machine_id"`
	TS      string   `json:"ts"`
	Temp    *float64 `json:"temperature_c"`
	Vib     *float64 `json:"vibration_rms"`
}

func TestFleetIsDeterministic(t *testing.T) {
	a, b := NewFleet(fleetCfg()), NewFleet(fleetCfg())
	var ea, eb [][]byte
	a.Until(t0.Add(2*time.Minute), func(e Event) { ea = append(ea, e.Data) })
	b.Until(t0.Add(2*time.Minute), func(e Event) { eb = append(eb, e.Data) })
	if len(ea) == 0 || len(ea) != len(eb) {
		t.Fatalf("runs with one seed emitted %d and %d events", len(ea), len(eb))
	}
	for i := range ea {
		if !bytes.Equal(ea[i], eb[i]) {
			t.Fatalf("event %d differs between runs with one seed", i)
		}
	}
}

func TestFleetGroundTruthIsVisibleInTheSignals(t *testing.T) {
	cfg := fleetCfg()
	f := NewFleet(cfg)
	truth := f.Truth()
	if len(truth) != 4 {
		t.Fatalf("20 machines at 20%% failing: %d failures, want 4", len(truth))
	}
	failing := map[string]Failure{}
	for _, fl := range truth {
		failing[fl.Machine] = fl
	}
	type acc struct{ n, sum float64 }
	// Per failing machine: mean of its signal in the first 10 minutes and in
	// the last 2 minutes before failure.
	early, late := map[string]*acc{}, map[string]*acc{}
	var total, late5, dups int
	seen := map[string]bool{}
	var lastArrival time.Time
	f.Until(t0.Add(time.Hour), func(e Event) {
		total++
		if e.Arrival.Before(lastArrival) {
			t.Fatalf("events not emitted in arrival order")
		}
		lastArrival = e.Arrival
		if e.Late {
			late5++
		}
		if e.Duplicate {
			dups++
		}
		var r reading
		if err := json.Unmarshal(e.Data, &r); err != nil {
			t.Fatalf("invalid JSON %s: %v", e.Data, err)
		}
		if r.Machine != e.Key {
			t.Fatalf("partition key %s for machine %s", e.Key, r.Machine)
		}
		seen[r.Machine] = true
		fl, ok := failing[r.Machine]
		if !ok {
			return
		}
		if !e.EventTime.Before(fl.At) {
			t.Fatalf("%s reported at %s, after its failure at %s", r.Machine, e.EventTime, fl.At)
		}
		v := r.Vib
		if fl.Mode == Overheating {
			v = r.Temp
		}
		if v == nil {
			return
		}
		switch {
		case e.EventTime.Before(t0.Add(10 * time.Minute)):
			if early[r.Machine] == nil {
				early[r.Machine] = &acc{}
			}
			early[r.Machine].n++
			early[r.Machine].sum += *v
		case e.EventTime.After(fl.At.Add(-2 * time.Minute)):
			if late[r.Machine] == nil {
				late[r.Machine] = &acc{}
			}
			late[r.Machine].n++
			late[r.Machine].sum += *v
		}
	})
	if len(seen) != cfg.Machines {
		t.Errorf("%d machines reported, want %d", len(seen), cfg.Machines)
	}
	for m, fl := range failing {
		e, l := early[m].sum/early[m].n, late[m].sum/late[m].n
		rise := l - e
		want := 0.4 // vibration g RMS
		if fl.Mode == Overheating {
			want = 12 // °C
		}
		if rise < want {
			t.Errorf("%s (%s): signal rose by %.3f before failing, want at least %v", m, fl.Mode, rise, want)
		}
	}
	if r := float64(dups) / float64(total); math.Abs(r-cfg.DuplicateRate) > 0.004 {
		t.Errorf("duplicate share %.4f, configured %.4f", r, cfg.DuplicateRate)
	}
	if late5 == 0 {
		t.Error("no late events generated")
	}
}

func TestAppChurnersTaperAndLeave(t *testing.T) {
	cfg := AppConfig{Users: 400, Start: t0, Duration: 28 * 24 * time.Hour, ChurnFraction: 0.25, TaperLead: 7 * 24 * time.Hour, Seed: 3}
	a := NewApp(cfg)
	if len(a.Truth()) != 100 {
		t.Fatalf("400 users at 25%% churn: %d churners, want 100", len(a.Truth()))
	}
	churn := map[string]Churn{}
	for _, c := range a.Truth() {
		churn[c.User] = c
	}
	// Sessions per churner-day: before the taper vs. in its last half.
	var before, beforeDays, taper, taperDays float64
	var logins, purchases, tickets int
	a.Until(t0.Add(cfg.Duration), func(e Event) {
		var ev struct {
			User, Type string
		}
		var raw map[string]any
		if err := json.Unmarshal(e.Data, &raw); err != nil {
			t.Fatalf("invalid JSON %s: %v", e.Data, err)
		}
		ev.User, ev.Type = raw["user_id"].(string), raw["event_type"].(string)
		switch ev.Type {
		case "login":
			logins++
		case "purchase":
			purchases++
			if _, ok := raw["amount"].(float64); !ok {
				t.Fatalf("purchase without an amount: %s", e.Data)
			}
		case "support_ticket":
			tickets++
		}
		c, ok := churn[ev.User]
		if !ok {
			return
		}
		if e.EventTime.After(c.At.Add(time.Hour)) {
			t.Fatalf("%s active at %s, after churning at %s", ev.User, e.EventTime, c.At)
		}
		if ev.Type != "login" {
			return
		}
		if e.EventTime.Before(c.TaperStart) {
			before++
		} else if e.EventTime.After(c.TaperStart.Add(c.At.Sub(c.TaperStart) / 2)) {
			taper++
		}
	})
	for _, c := range a.Truth() {
		beforeDays += c.TaperStart.Sub(t0).Hours() / 24
		taperDays += c.At.Sub(c.TaperStart).Hours() / 48
	}
	if r := (taper / taperDays) / (before / beforeDays); r > 0.6 {
		t.Errorf("churners' login rate in the late taper is %.2f of their normal rate, want a clear drop (< 0.6)", r)
	}
	if logins == 0 || purchases == 0 || tickets == 0 {
		t.Errorf("event mix: %d logins, %d purchases, %d tickets", logins, purchases, tickets)
	}
}
