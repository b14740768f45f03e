package workerload

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamscore/streamscore/consumer/coordstate"
)

func TestStatsFlushMeansAndFailedPeriods(t *testing.T) {
	s := NewStats(3)
	s.Add(10)
	s.Add(20)
	s.Add(40)
	if got := s.Flush(); !slices.Equal(got, []float64{23.333333}) {
		t.Fatalf("first period = %v, want [23.333333] (mean rounded to 6 decimals)", got)
	}
	got := s.Flush() // nothing sampled: the metric failed this period
	if !slices.Equal(got, []float64{23.333333, FailedReading}) {
		t.Fatalf("empty period = %v, want [23.333333 -1]", got)
	}
	got[0] = 99 // the caller's copy
	s.Add(1)
	s.Add(math.NaN()) // dropped, does not poison the mean
	s.Add(math.Inf(1))
	if got := s.Flush(); !slices.Equal(got, []float64{23.333333, -1, 1}) {
		t.Fatalf("after NaN and Inf = %v, want [23.333333 -1 1]", got)
	}
	s.Add(5)
	if got := s.Flush(); !slices.Equal(got, []float64{-1, 1, 5}) {
		t.Fatalf("history beyond 3 = %v, want the oldest dropped: [-1 1 5]", got)
	}
	if got := NewStats(0).max; got != coordstate.DefaultPersistedMetricValues {
		t.Fatalf("history 0 keeps %d, want coordstate.DefaultPersistedMetricValues", got)
	}
}

func TestStatsKeepsTheLast300Samples(t *testing.T) {
	s := NewStats(1)
	s.Add(1000) // dropped: Java's raw queue holds 300 samples
	for range rawSamples {
		s.Add(2)
	}
	if got := s.Flush(); !slices.Equal(got, []float64{2}) {
		t.Fatalf("after 301 samples = %v, want [2]", got)
	}
}

func TestRound6HalfUpOnTheDecimal(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0.1234565, 0.123457}, // binary value is below …65, Java rounds the decimal
		{0.1234564999, 0.123456},
		{0.0000005, 0.000001},
		{0.00000049, 0},
		{-0.0000005, -0.000001},
		{-0.0000001, 0},
		{1.0 / 3, 0.333333},
		{2.0 / 3, 0.666667},
		{99.9999995, 100},
		{12.5, 12.5},
		{123456789.1234565, 123456789.123457},
		{1e20, 1e20},
		{5e-324, 0},
		{0, 0},
	} {
		if got := round6(tc.in); got != tc.want || math.Signbit(got) != math.Signbit(tc.want) {
			t.Errorf("round6(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if math.Signbit(round6(-0.0000001)) {
		t.Error("round6 gave -0; BigDecimal gives 0")
	}
	if n := testing.AllocsPerRun(100, func() { round6(23.3333333333) }); n != 0 {
		t.Errorf("round6 allocates %v times", n)
	}
}

func TestEMAAgainstHandComputation(t *testing.T) {
	// α 0.5 over [10, -1, 20, 40]: 10, skip, 0.5·20+0.5·10 = 15, 0.5·40+0.5·15 = 27.5.
	if v, ok := EMA([]float64{10, FailedReading, 20, 40}, DefaultEMAAlpha); !ok || v != 27.5 {
		t.Fatalf("EMA = %v, %v; want 27.5", v, ok)
	}
	// α 0.25 over [-1, 80, 40]: 80, then 0.25·40 + 0.75·80 = 70.
	if v, ok := EMA([]float64{FailedReading, 80, 40}, 0.25); !ok || v != 70 {
		t.Fatalf("EMA = %v, %v; want 70", v, ok)
	}
	for _, in := range [][]float64{nil, {FailedReading, FailedReading}} {
		if v, ok := EMA(in, DefaultEMAAlpha); ok {
			t.Errorf("EMA(%v) = %v, true; want not ok (Java would use 0)", in, v)
		}
	}
}

// scripted is a CPUSource that returns the given results in order; the
// next call closes exhausted and blocks until the sampler stops. The
// sampler makes that call only after adding the last result, so a test
// that saw exhausted knows every result was taken.
type scripted struct {
	mu        sync.Mutex
	results   []scriptedResult
	exhausted chan struct{}
	once      sync.Once
}

type scriptedResult struct {
	v   float64
	err error
}

func (s *scripted) Name() string { return "scripted" }

func (s *scripted) Sample(ctx context.Context) (float64, error) {
	s.mu.Lock()
	if len(s.results) > 0 {
		r := s.results[0]
		s.results = s.results[1:]
		s.mu.Unlock()
		return r.v, r.err
	}
	s.mu.Unlock()
	s.once.Do(func() { close(s.exhausted) })
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestSamplerAveragesSuccessesAndLogsEachRunOfFailuresOnce(t *testing.T) {
	bad := errors.New("endpoint down")
	src := &scripted{exhausted: make(chan struct{}), results: []scriptedResult{
		{v: 10}, {err: bad}, {err: bad}, {v: 20}, {err: bad}, {v: 30}, {v: 0},
	}}
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	s := NewSampler(src, time.Millisecond, 2, log)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.Run(ctx); close(stopped) }()
	select {
	case <-src.exhausted:
	case <-time.After(time.Minute):
		t.Fatal("the sampler did not take every scripted result within a minute")
	}
	cancel()
	<-stopped
	if got := s.Flush(); !slices.Equal(got, []float64{15}) {
		t.Fatalf("flush = %v, want [15], the mean of 10 20 30 0", got)
	}
	if got := s.Flush(); !slices.Equal(got, []float64{15, FailedReading}) {
		t.Fatalf("second flush = %v, want [15 -1]", got)
	}
	logMu.Lock()
	defer logMu.Unlock()
	out := logs.String()
	if n := strings.Count(out, "sample failed"); n != 2 {
		t.Errorf("%d failure logs, want 2 (one per run of failures):\n%s", n, out)
	}
	if n := strings.Count(out, "recovered"); n != 2 {
		t.Errorf("%d recovery logs, want 2:\n%s", n, out)
	}
	if strings.Contains(out, "context canceled") {
		t.Errorf("stopping was logged as a failure:\n%s", out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
