package loadtest

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/config"
)

// sensorReading is a fleet reading: the machine, the time, and each
// sensor's value (nil when it dropped out).
type sensorReading struct {
	Machine, TS string
	Values      map[string]*float64
}

func parseReading(t *testing.T, b []byte) sensorReading {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	r := sensorReading{Values: map[string]*float64{}}
	if err := errors.Join(json.Unmarshal(raw["machine_id"], &r.Machine), json.Unmarshal(raw["ts"], &r.TS)); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	for _, f := range SensorFields() {
		var v *float64
		if m, ok := raw[f]; ok {
			if err := json.Unmarshal(m, &v); err != nil {
				t.Fatalf("%s in %s: %v", f, b, err)
			}
		}
		r.Values[f] = v
	}
	return r
}

// The same fleet with and without a shift draws the same randomness, so
// its readings can be compared one by one: a shifted machine's field reads
// exactly By more from the shift's start on, and nothing else changes.
func TestCalibrationShiftMovesShiftedMachinesOnlyAfterItStarts(t *testing.T) {
	for _, c := range []struct {
		field string
		by    float64
	}{{"temperature_c", 5}, {"rpm", -40}, {"vibration_rms", 0.05}} {
		t.Run(c.field, func(t *testing.T) {
			cfg := fleetCfg()
			shifted := cfg
			shifted.Shift = &CalibrationShift{Field: c.field, By: c.by, Share: 0.5, At: 10 * time.Minute}
			plain, moved := NewFleet(cfg), NewFleet(shifted)
			truth := moved.ShiftTruth()
			if plain.ShiftTruth() != nil {
				t.Fatal("a fleet without a shift reports one")
			}
			start := t0.Add(10 * time.Minute)
			if truth == nil || truth.Field != c.field || truth.By != c.by || !truth.Start.Equal(start) ||
				len(truth.Machines) != cfg.Machines/2 || truth.FleetSize != cfg.Machines {
				t.Fatalf("ground truth %+v, want %s %+v on %d of %d machines from %s", truth, c.field, c.by, cfg.Machines/2, cfg.Machines, start)
			}
			var a, b []Event
			end := t0.Add(30 * time.Minute)
			plain.Until(end, func(e Event) { a = append(a, e) })
			moved.Until(end, func(e Event) { b = append(b, e) })
			if len(a) != len(b) {
				t.Fatalf("the shift changed the number of events: %d and %d", len(a), len(b))
			}
			var movedN, stillN, beforeN int
			for i := range a {
				if a[i].Key != b[i].Key || !a[i].EventTime.Equal(b[i].EventTime) {
					t.Fatalf("event %d: the shift changed which reading comes when", i)
				}
				ra, rb := parseReading(t, a[i].Data), parseReading(t, b[i].Data)
				isShifted := slices.Contains(truth.Machines, ra.Machine)
				after := !a[i].EventTime.Before(start)
				for _, f := range SensorFields() {
					va, vb := ra.Values[f], rb.Values[f]
					if (va == nil) != (vb == nil) {
						t.Fatalf("event %d: %s present in one run only", i, f)
					}
					if va == nil {
						continue
					}
					want := 0.0
					if f == c.field && isShifted && after {
						want = c.by
						movedN++
					} else if f == c.field && isShifted {
						beforeN++
					} else if f == c.field {
						stillN++
					}
					// Readings are sent rounded to 3 decimals (rpm to units).
					if d := *vb - *va; math.Abs(d-want) > 0.0011 {
						t.Fatalf("%s at %s: %s moved by %v, want %v (shifted machine %v, after the shift %v)",
							ra.Machine, ra.TS, f, d, want, isShifted, after)
					}
				}
			}
			if movedN == 0 || stillN == 0 || beforeN == 0 {
				t.Fatalf("readings: %d shifted, %d of unshifted machines, %d of shifted machines before the shift; want some of each", movedN, stillN, beforeN)
			}
		})
	}
}

func TestShiftedMachinesAreChosenByIDAlone(t *testing.T) {
	cfg := fleetCfg()
	cfg.Shift = &CalibrationShift{Field: "pressure_bar", Share: 0.5}
	other := cfg
	other.Seed++
	a, b := NewFleet(cfg).ShiftTruth(), NewFleet(other).ShiftTruth()
	if !slices.Equal(a.Machines, b.Machines) {
		t.Errorf("two seeds shift different machines: %v and %v", a.Machines, b.Machines)
	}
	if want, _ := DefaultShift("pressure_bar"); a.By != want {
		t.Errorf("shift by %v without By, want the default %v", a.By, want)
	}
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = "press-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
	}
	quarter, half := ShiftedMachines(ids, 0.25), ShiftedMachines(ids, DefaultDriftShare)
	if len(quarter) != 10 || len(half) != 20 {
		t.Fatalf("a quarter and a half of 40 machines: %d and %d", len(quarter), len(half))
	}
	for _, id := range quarter {
		if !slices.Contains(half, id) {
			t.Errorf("%s is shifted at share 0.25 but not at 0.5", id)
		}
	}
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	if got := ShiftedMachines(rev, 0.5); !slices.Equal(got, half) {
		t.Errorf("the choice depends on the fleet's order: %v and %v", got, half)
	}
}

// The default shift is one standard deviation of a machine's window mean
// across the fleet, and on half the fleet it moves the distribution of
// window means by more than Model Monitor's default drift threshold (0.1).
func TestDefaultShiftIsOneFleetStandardDeviationOfAWindowMean(t *testing.T) {
	const window = 30 * time.Second
	cfg := FleetConfig{Machines: 400, Interval: 250 * time.Millisecond, Start: t0, Seed: 11}
	sums, ns := map[string]map[string]float64{}, map[string]map[string]float64{}
	NewFleet(cfg).Until(t0.Add(window), func(e Event) {
		r := parseReading(t, e.Data)
		for f, v := range r.Values {
			if v == nil {
				continue
			}
			if sums[f] == nil {
				sums[f], ns[f] = map[string]float64{}, map[string]float64{}
			}
			sums[f][r.Machine] += *v
			ns[f][r.Machine]++
		}
	})
	for _, f := range SensorFields() {
		var means []float64
		for m, s := range sums[f] {
			means = append(means, s/ns[f][m])
		}
		sort.Float64s(means)
		var mu, ss float64
		for _, x := range means {
			mu += x
		}
		mu /= float64(len(means))
		for _, x := range means {
			ss += (x - mu) * (x - mu)
		}
		std := math.Sqrt(ss / float64(len(means)-1))
		def, err := DefaultShift(f)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(def/std-1) > 0.15 {
			t.Errorf("%s: default shift %.4g, fleet std of 30 s window means %.4g: want within 15%%", f, def, std)
		}
		// Shift every other machine (by rank, a fair half) and compare
		// the two empirical CDFs.
		moved := slices.Clone(means)
		for i := range moved {
			if i%2 == 0 {
				moved[i] += def
			}
		}
		sort.Float64s(moved)
		if d := lInfinity(means, moved); d < 0.15 {
			t.Errorf("%s: half the fleet shifted by the default moves the CDF of window means by %.3f, want well above 0.1", f, d)
		}
	}
	if _, err := DefaultShift("humidity"); err == nil || !strings.Contains(err.Error(), "temperature_c") {
		t.Errorf("an unknown field: %v, want an error listing the fleet's fields", err)
	}
}

// lInfinity is the largest gap between the empirical CDFs of two sorted
// samples.
func lInfinity(a, b []float64) float64 {
	var d float64
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

func TestShiftTimeReadsAFractionOrADuration(t *testing.T) {
	run := 80 * time.Second
	for _, c := range []struct {
		in   string
		want time.Duration
	}{{"0.5", 40 * time.Second}, {"0.25", 20 * time.Second}, {"0", 0}, {"1", run}, {"30s", 30 * time.Second}, {"0s", 0}, {"2m", 2 * time.Minute}} {
		var st ShiftTime
		if err := st.Set(c.in); err != nil {
			t.Errorf("Set(%q): %v", c.in, err)
			continue
		}
		if got := st.Of(run); got != c.want {
			t.Errorf("%q of a %s run = %s, want %s", c.in, run, got, c.want)
		}
		var again ShiftTime
		if err := again.Set(st.String()); err != nil || again.Of(run) != c.want {
			t.Errorf("%q printed as %q, which reads back as %s (%v)", c.in, st.String(), again.Of(run), err)
		}
	}
	for _, bad := range []string{"1.5", "-0.1", "-3s", "half", ""} {
		var st ShiftTime
		if err := st.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted as %s", bad, st.String())
		}
	}
}

func TestRunRefusesAShiftThePipelineCannotSee(t *testing.T) {
	cfg := &config.Config{File: "f.yaml", Pipeline: "p",
		Streams: []config.Stream{{Name: "s", Schema: "sensor"}},
		Schemas: map[string]*config.Schema{"sensor": {Entity: "machine_id", Time: "ts", Fields: []config.Field{
			{Name: "temperature_c", Type: "float64"}, {Name: "rpm", Type: "int64"}, {Name: "current_a", Type: "string"}}}}}
	s := &scenarioRun{cfg: cfg, stream: "s"}
	for _, c := range []struct {
		shift CalibrationShift
		want  string // "" accepted
	}{
		{CalibrationShift{Field: "temperature_c", At: 10 * time.Second}, ""},
		{CalibrationShift{Field: "rpm", By: 30, Share: 1}, ""},
		{CalibrationShift{Field: "vibration_rms"}, `"vibration_rms" is not a numeric field of schema sensor (temperature_c, rpm)`},
		{CalibrationShift{Field: "current_a"}, `"current_a" is not a numeric field`},
		{CalibrationShift{Field: "humidity"}, "the fleet has no sensor"},
		{CalibrationShift{Field: "rpm", Share: 1.5}, "share 1.5"},
		{CalibrationShift{Field: "rpm", By: math.NaN()}, "not a number"},
		{CalibrationShift{Field: "rpm", At: time.Minute}, "shift nothing"},
	} {
		err := checkShift(c.shift, s, time.Minute)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v refused: %v", c.shift, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one saying %q", c.shift, err, c.want)
		}
	}
}
