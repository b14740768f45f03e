package loadtest

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sensor is one reading a machine reports, as the generator models it: a
// machine's own level, drawn once around the fleet's mean with spread; a
// daily swing (amplitude of a sine whose phase differs by machine); and
// noise on every reading.
type sensor struct {
	field, unit  string
	mean, spread float64
	swing, noise float64
}

// The sensors' indexes in sensors().
const (
	iTemp = iota
	iVib
	iPres
	iRPM
	iCur
	nSensors
)

// sensors lists the readings in the order the generator draws and writes
// them (the order is part of a seed's output).
func sensors() [nSensors]sensor {
	return [nSensors]sensor{
		iTemp: {field: "temperature_c", unit: "°C", mean: 65, spread: 3, swing: 4, noise: 0.8},
		iVib:  {field: "vibration_rms", unit: "g", mean: 0.35, spread: 0.03, swing: 0.02, noise: 0.03},
		iPres: {field: "pressure_bar", unit: "bar", mean: 5, spread: 0.2, swing: 0, noise: 0.1},
		iRPM:  {field: "rpm", unit: "rpm", mean: 1480, spread: 20, swing: 15, noise: 5},
		iCur:  {field: "current_a", unit: "A", mean: 12, spread: 0.5, swing: 0.6, noise: 0.3},
	}
}

func sensorIndex(field string) (int, bool) {
	for i, s := range sensors() {
		if s.field == field {
			return i, true
		}
	}
	return 0, false
}

// SensorFields are the readings a fleet reports, in the order it writes them.
func SensorFields() []string {
	var out []string
	for _, s := range sensors() {
		out = append(out, s.field)
	}
	return out
}

// DefaultShift is one standard deviation of a machine's window mean of
// field across a healthy fleet: the spread of the machines' own levels and
// of their daily cycles (a sine of amplitude a at a random phase has
// variance a²/2). A window of a hundred readings averages the per-reading
// noise away, so it is left out. A shift of this size on half the fleet
// moves the fleet's distribution of the field's window means by an
// L-infinity distance of about 0.19, above Model Monitor's default
// threshold of 0.1, while no single machine leaves the healthy range.
func DefaultShift(field string) (float64, error) {
	i, ok := sensorIndex(field)
	if !ok {
		return 0, unknownSensor(field)
	}
	s := sensors()[i]
	return math.Sqrt(s.spread*s.spread + s.swing*s.swing/2), nil
}

// SensorUnit is the unit field is reported in ("" for an unknown field).
func SensorUnit(field string) string {
	if i, ok := sensorIndex(field); ok {
		return sensors()[i].unit
	}
	return ""
}

func unknownSensor(field string) error {
	return fmt.Errorf("loadtest: the fleet has no sensor %q (it reports %s)", field, strings.Join(SensorFields(), ", "))
}

// DefaultDriftShare is the share of machines a calibration shift touches
// unless told otherwise: half the fleet, so the field's distribution
// becomes a mixture of the old and the moved one, as when one supplier's
// sensors or one site's recalibration go wrong.
const DefaultDriftShare = 0.5

// DefaultDriftAt is when a run's calibration shift starts unless told
// otherwise, as a fraction of the run: halfway, so the monitor sees as many
// periods before the shift (where a drift alert is a false alarm) as after.
const DefaultDriftAt = 0.5

// CalibrationShift moves one sensor's readings by a constant on part of the
// fleet from some time on, as a recalibrated or replaced sensor does: the
// machines behave as before, what they report changes. A drift monitor
// should flag the features computed from Field and no other.
type CalibrationShift struct {
	// Field is the reading shifted (one of SensorFields).
	Field string
	// By is added to every reading of Field, in the field's units
	// (SensorUnit); an integer reading is rounded after the shift. 0 takes
	// DefaultShift(Field).
	By float64
	// Share is the fraction of machines shifted, chosen by machine id
	// (ShiftedMachines); 0 takes DefaultDriftShare.
	Share float64
	// At is when the shift starts, after the fleet's Start: readings with an
	// event time at or after it are shifted.
	At time.Duration
}

// withDefaults fills By and Share.
func (c CalibrationShift) withDefaults() (CalibrationShift, error) {
	if c.By == 0 {
		by, err := DefaultShift(c.Field)
		if err != nil {
			return c, err
		}
		c.By = by
	}
	if c.Share == 0 {
		c.Share = DefaultDriftShare
	}
	return c, nil
}

// Check reports what is wrong with the shift, naming the setting.
func (c CalibrationShift) Check() error {
	var errs []error
	if _, ok := sensorIndex(c.Field); !ok {
		errs = append(errs, unknownSensor(c.Field))
	}
	if math.IsNaN(c.By) || math.IsInf(c.By, 0) {
		errs = append(errs, fmt.Errorf("loadtest: shift by %v: not a number", c.By))
	}
	if !(c.Share >= 0 && c.Share <= 1) {
		errs = append(errs, fmt.Errorf("loadtest: shift share %v: want a fraction of the fleet in (0, 1]", c.Share))
	}
	if c.At < 0 {
		errs = append(errs, fmt.Errorf("loadtest: shift at %s: before the fleet starts", c.At))
	}
	return errors.Join(errs...)
}

// ShiftTruth is the ground truth of a calibration shift: which reading
// moved, by how much, on which machines, from when.
type ShiftTruth struct {
	Field string
	// By is what was added to each reading, in the field's units.
	By float64
	// Machines are the shifted machines' ids, sorted; FleetSize how many
	// machines the fleet has.
	Machines  []string
	FleetSize int
	// Start is the event time of the first shifted readings.
	Start time.Time
}

// ShiftedMachines chooses round(share × len(ids)) machines by a hash of
// their ids alone: the choice does not depend on the seed, and a larger
// share shifts the same machines and more.
func ShiftedMachines(ids []string, share float64) []string {
	type ranked struct {
		h  uint64
		id string
	}
	rs := make([]ranked, len(ids))
	for i, id := range ids {
		h := fnv.New64a()
		h.Write([]byte(id))
		rs[i] = ranked{h.Sum64(), id}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.h, b.h), strings.Compare(a.id, b.id))
	})
	n := int(math.Round(share * float64(len(ids))))
	out := make([]string, 0, n)
	for _, r := range rs[:n] {
		out = append(out, r.id)
	}
	slices.Sort(out)
	return out
}

// applyShift marks the shifted machines and records the ground truth.
func (f *Fleet) applyShift(c CalibrationShift) {
	if err := c.Check(); err != nil {
		panic("loadtest: NewFleet: " + err.Error()) // a caller's bug: Run checks the shift first
	}
	c, err := c.withDefaults()
	if err != nil {
		panic("loadtest: NewFleet: " + err.Error())
	}
	ids := make([]string, len(f.machines))
	for i, m := range f.machines {
		ids[i] = m.id
	}
	chosen := ShiftedMachines(ids, c.Share)
	for _, m := range f.machines {
		_, m.shifted = slices.BinarySearch(chosen, m.id)
	}
	f.shifted, _ = sensorIndex(c.Field)
	f.shift = &ShiftTruth{Field: c.Field, By: c.By, Machines: chosen, FleetSize: len(ids), Start: f.cfg.Start.Add(c.At)}
}

// ShiftTruth is the calibration shift the fleet makes, nil if none.
func (f *Fleet) ShiftTruth() *ShiftTruth { return f.shift }

// ShiftTime is when a shift starts in a run: a fraction of the run's
// duration, or a duration after its start. As a flag it reads "0.5" or
// "40s".
type ShiftTime struct {
	Fraction float64
	After    time.Duration
	after    bool // After was given (it may be 0s)
}

// ShiftAfter is a ShiftTime a fixed duration after the start.
func ShiftAfter(d time.Duration) ShiftTime { return ShiftTime{After: d, after: true} }

// ShiftAtFraction is a ShiftTime a fraction of the way into the run.
func ShiftAtFraction(f float64) ShiftTime { return ShiftTime{Fraction: f} }

// Of is the shift's start after the start of a run lasting run.
func (t ShiftTime) Of(run time.Duration) time.Duration {
	if t.after {
		return t.After
	}
	return time.Duration(t.Fraction * float64(run))
}

// String prints the value as Set reads it.
func (t *ShiftTime) String() string {
	if t.after {
		return t.After.String()
	}
	return strconv.FormatFloat(t.Fraction, 'g', -1, 64)
}

// Set reads a duration ("40s", "1m30s") or a fraction of the run in [0, 1]
// ("0.5").
func (t *ShiftTime) Set(s string) error {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return fmt.Errorf("%q: before the run starts", s)
		}
		*t = ShiftAfter(d)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return fmt.Errorf("%q: want a fraction of the run in [0, 1] (0.5) or a duration after its start (40s)", s)
	}
	*t = ShiftAtFraction(f)
	return nil
}

// Type names the value in flag help.
func (t *ShiftTime) Type() string { return "fraction|duration" }
