// Package loadtest generates realistic traffic whose ground truth is known,
// publishes it to Kinesis, and measures what the pipeline made of it:
// throughput, end-to-end latency, and for the factory scenario whether the
// alerts caught the failures before they happened.
//
// Two scenarios:
//   - Fleet: machines reporting sensor readings with daily cycles, noise,
//     dropouts, duplicates, out-of-order and late arrivals; some machines
//     degrade (bearing wear raising vibration, overheating) before failing at
//     a recorded time. Optionally one sensor's calibration shifts on part
//     of the fleet mid-run (CalibrationShift), recorded too, for judging
//     drift alerts.
//   - App: users with sessions, logins, purchases and support tickets; churners
//     taper off before leaving at a recorded time.
//
// Generators are deterministic for a seed, so a run can be reproduced and a
// model trained on one seed can be judged on another.
package loadtest

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Event is one record to publish: its partition key, its JSON payload, its
// event time, and when the generator lets it "arrive" (event time plus any
// transport delay it simulates).
type Event struct {
	Key       string
	Data      []byte
	EventTime time.Time
	Arrival   time.Time
	// Late marks an event the generator delayed beyond the pipeline's
	// allowed lateness on purpose; Duplicate marks a re-sent copy.
	Late, Duplicate bool
}

// FailureMode is how a degrading machine fails.
type FailureMode string

// Failure modes.
const (
	BearingWear FailureMode = "bearing_wear" // vibration rises, then current
	Overheating FailureMode = "overheating"  // temperature rises, pressure sags
)

// Failure is the ground truth for one machine that fails.
type Failure struct {
	Machine string
	Mode    FailureMode
	// DegradeStart is when the signals start to drift; At is the failure.
	DegradeStart, At time.Time
}

// FleetConfig shapes a fleet of machines.
type FleetConfig struct {
	Machines int
	// Interval between two readings of one machine. Default 1s.
	Interval time.Duration
	// Start is the event time of the first readings.
	Start time.Time
	// FailingFraction of machines degrade and fail, at times spread evenly
	// over [FailFrom, FailTo] after Start.
	FailingFraction  float64
	FailFrom, FailTo time.Duration
	// DegradeLead is how long before the failure the drift begins.
	DegradeLead time.Duration
	// DropoutRate is the share of readings missing a sensor value (absent
	// field or null), as real sensors do.
	DropoutRate float64
	// DuplicateRate is the share of readings sent twice.
	DuplicateRate float64
	// OutOfOrderRate readings are delayed by up to MaxDisorder (within the
	// pipeline's out-of-orderness); LateRate readings by LateBy (beyond its
	// allowed lateness).
	OutOfOrderRate, LateRate float64
	MaxDisorder, LateBy      time.Duration
	Seed                     uint64
	// IDPrefix starts every machine id, so several fleets can share a
	// stream without sharing machines.
	IDPrefix string
	// Stop, when set, is when the machines stop reporting, as a live run's
	// publisher stops (zero: never).
	Stop time.Time
	// Shift, when set, moves one sensor's readings on part of the fleet
	// from some time on (recorded in ShiftTruth). It must pass Check.
	Shift *CalibrationShift
}

func (c *FleetConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Start.IsZero() {
		c.Start = time.Now().UTC()
	}
	if c.DegradeLead <= 0 {
		c.DegradeLead = 10 * time.Minute
	}
	if c.FailTo < c.FailFrom {
		c.FailTo = c.FailFrom
	}
}

type machine struct {
	id      string
	base    [nSensors]float64 // each sensor's level on this machine, in sensors() order
	phase   float64           // daily cycle offset
	failure *Failure
	shifted bool      // its calibration shifts (FleetConfig.Shift)
	next    time.Time // event time of the next reading
	failed  bool
}

// Fleet generates sensor readings for a fleet of machines.
type Fleet struct {
	cfg      FleetConfig
	rng      *rand.Rand
	machines []*machine
	pending  arrivals
	truth    []Failure
	shift    *ShiftTruth
	shifted  int // the shifted sensor's index in sensors()
	buf      []byte
}

// NewFleet builds the fleet and decides, from the seed, which machines fail,
// how and when, and which a calibration shift touches (by their ids). A
// shift that fails Check is a caller's bug and panics; Run checks first.
func NewFleet(cfg FleetConfig) *Fleet {
	cfg.defaults()
	f := &Fleet{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
	nFail := int(math.Round(float64(cfg.Machines) * cfg.FailingFraction))
	failing := f.rng.Perm(cfg.Machines)[:nFail]
	isFailing := make(map[int]int, nFail)
	for rank, i := range failing {
		isFailing[i] = rank
	}
	for i := range cfg.Machines {
		m := &machine{id: fmt.Sprintf("%spress-%03d", cfg.IDPrefix, i)}
		for j, s := range sensors() {
			m.base[j] = s.mean + f.rng.NormFloat64()*s.spread
		}
		m.phase = f.rng.Float64() * 2 * math.Pi
		// Stagger the machines' clocks within one interval.
		m.next = cfg.Start.Add(time.Duration(f.rng.Int64N(int64(cfg.Interval))))
		if rank, ok := isFailing[i]; ok {
			at := cfg.FailFrom
			if nFail > 1 {
				at += time.Duration(float64(cfg.FailTo-cfg.FailFrom) * float64(rank) / float64(nFail-1))
			}
			mode := BearingWear
			if rank%2 == 1 {
				mode = Overheating
			}
			fail := Failure{Machine: m.id, Mode: mode, At: cfg.Start.Add(at), DegradeStart: cfg.Start.Add(at - cfg.DegradeLead)}
			m.failure = &fail
			f.truth = append(f.truth, fail)
		}
		f.machines = append(f.machines, m)
	}
	if cfg.Shift != nil {
		f.applyShift(*cfg.Shift)
	}
	return f
}

// Truth lists the machines that fail, with when and how.
func (f *Fleet) Truth() []Failure { return f.truth }

// Until emits, in arrival order, every reading that has arrived by t: all
// readings with event time before t, minus those still delayed in transit,
// plus delayed ones whose arrival came. A failed machine stops reporting.
func (f *Fleet) Until(t time.Time, emit func(Event)) {
	for _, m := range f.machines {
		for !m.failed && m.next.Before(t) && (f.cfg.Stop.IsZero() || m.next.Before(f.cfg.Stop)) {
			ts := m.next
			m.next = m.next.Add(f.cfg.Interval)
			if m.failure != nil && !ts.Before(m.failure.At) {
				m.failed = true
				break
			}
			f.schedule(m.id, ts, f.reading(m, ts))
		}
	}
	for len(f.pending) > 0 && !f.pending[0].Arrival.After(t) {
		emit(heap.Pop(&f.pending).(Event))
	}
}

// Drain emits every reading still in transit.
func (f *Fleet) Drain(emit func(Event)) {
	for len(f.pending) > 0 {
		emit(heap.Pop(&f.pending).(Event))
	}
}

func (f *Fleet) schedule(key string, ts time.Time, data []byte) {
	ev := Event{Key: key, Data: data, EventTime: ts, Arrival: ts}
	switch r := f.rng.Float64(); {
	case r < f.cfg.LateRate:
		ev.Arrival = ts.Add(f.cfg.LateBy)
		ev.Late = true
	case r < f.cfg.LateRate+f.cfg.OutOfOrderRate && f.cfg.MaxDisorder > 0:
		ev.Arrival = ts.Add(time.Duration(f.rng.Int64N(int64(f.cfg.MaxDisorder))))
	}
	heap.Push(&f.pending, ev)
	if f.rng.Float64() < f.cfg.DuplicateRate {
		dup := ev
		dup.Duplicate = true
		dup.Arrival = dup.Arrival.Add(time.Duration(f.rng.Int64N(int64(time.Second))))
		heap.Push(&f.pending, dup)
	}
}

// reading renders one sensor reading as JSON.
func (f *Fleet) reading(m *machine, ts time.Time) []byte {
	day := float64(ts.Unix()%86400) / 86400
	cycle := math.Sin(2*math.Pi*day + m.phase) // ambient and load follow the day
	ss := sensors()
	var v [nSensors]float64
	for i, s := range ss {
		v[i] = m.base[i] + s.swing*cycle + f.rng.NormFloat64()*s.noise
	}
	if d := m.failure; d != nil && ts.After(d.DegradeStart) {
		// Progress 0..1 over the lead time; wear accelerates (quadratic).
		p := float64(ts.Sub(d.DegradeStart)) / float64(d.At.Sub(d.DegradeStart))
		w := p * p
		switch d.Mode {
		case BearingWear:
			v[iVib] += 0.9*w + f.rng.NormFloat64()*0.08*w
			v[iCur] += 2.5 * w
			v[iRPM] -= 30 * w
		case Overheating:
			v[iTemp] += 28 * w
			v[iPres] -= 0.8 * w
			v[iCur] += 1.2 * w
		}
	}
	// A calibration shift changes what the sensor reports, not the machine:
	// it draws nothing from the generator, so every other reading of the
	// run stays as it would have been without it.
	if m.shifted && !ts.Before(f.shift.Start) {
		v[f.shifted] += f.shift.By
	}
	b := f.buf[:0]
	b = append(b, `{"machine_id":"`...)
	b = append(b, m.id...)
	b = append(b, `","ts":"`...)
	b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, '"')
	b = f.appendSensor(b, ss[iTemp].field, v[iTemp])
	b = f.appendSensor(b, ss[iVib].field, v[iVib])
	b = f.appendSensor(b, ss[iPres].field, v[iPres])
	if f.rng.Float64() >= f.cfg.DropoutRate {
		b = append(b, `,"`...)
		b = append(b, ss[iRPM].field...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, int64(math.Round(v[iRPM])), 10)
	}
	b = f.appendSensor(b, ss[iCur].field, v[iCur])
	b = append(b, '}')
	f.buf = b
	return append([]byte(nil), b...)
}

// appendSensor writes a float field, or drops it out (absent or null) at
// the dropout rate.
func (f *Fleet) appendSensor(b []byte, name string, v float64) []byte {
	if r := f.rng.Float64(); r < f.cfg.DropoutRate {
		if r < f.cfg.DropoutRate/2 {
			return b // absent
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		return append(b, `":null`...)
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendFloat(b, math.Round(v*1000)/1000, 'f', -1, 64)
}

// arrivals is a min-heap of events by arrival time (then event time), so
// delayed events come out when their time comes.
type arrivals []Event

func (a arrivals) Len() int { return len(a) }
func (a arrivals) Less(i, j int) bool {
	if !a[i].Arrival.Equal(a[j].Arrival) {
		return a[i].Arrival.Before(a[j].Arrival)
	}
	return a[i].EventTime.Before(a[j].EventTime)
}
func (a arrivals) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *arrivals) Push(x any)   { *a = append(*a, x.(Event)) }
func (a *arrivals) Pop() any {
	old := *a
	n := len(old)
	x := old[n-1]
	*a = old[:n-1]
	return x
}
