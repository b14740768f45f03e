package workerload

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/streamscore/streamscore/consumer/coordstate"
)

// rawSamples bounds the samples kept between two Flushes, oldest dropped
// first: Java's WorkerMetricStatsManager.HIGH_FREQUENCY_STATS_COUNT
// (five minutes of 1 s samples). It only matters when Flush is late.
const rawSamples = 300

// Stats keeps the samples of one metric and its history of report-period
// means, as Java's WorkerMetricStatsManager does. Memory is fixed: 300 raw
// samples and the history. It is safe for concurrent use.
type Stats struct {
	mu      sync.Mutex
	raw     [rawSamples]float64
	head, n int // ring of the samples since the last Flush
	hist    []float64
	max     int
}

// NewStats keeps a history of at most history values; history <= 0 means
// coordstate.DefaultPersistedMetricValues, what the worker-metrics item
// keeps.
func NewStats(history int) *Stats {
	if history <= 0 {
		history = coordstate.DefaultPersistedMetricValues
	}
	return &Stats{max: history, hist: make([]float64, 0, history)}
}

// Add records one sample. NaN and infinities are dropped: Java never
// records them from its CPU metrics, and one would poison the mean.
func (s *Stats) Add(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	s.mu.Lock()
	s.raw[(s.head+s.n)%rawSamples] = v
	if s.n < rawSamples {
		s.n++
	} else {
		s.head = (s.head + 1) % rawSamples
	}
	s.mu.Unlock()
}

// Flush appends the mean of the samples since the last Flush, rounded to 6
// decimals half-up, or FailedReading when there were none, drops the oldest
// values beyond the history size, and returns a copy of the history, oldest
// first: the list Java writes as the worker's "sts" value.
func (s *Stats) Flush() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := FailedReading
	if s.n > 0 {
		// Java's DoubleStream.average sums with Kahan compensation; the same
		// summation gives the same mean to the last bit.
		var sum, comp, simple float64
		for i := range s.n {
			x := s.raw[(s.head+i)%rawSamples]
			y := x - comp
			t := sum + y
			comp = (t - sum) - y
			sum = t
			simple += x
		}
		total := sum - comp
		if math.IsNaN(total) && math.IsInf(simple, 0) {
			total = simple
		}
		v = round6(total / float64(s.n))
	}
	s.head, s.n = 0, 0
	if len(s.hist) == s.max {
		copy(s.hist, s.hist[1:])
		s.hist = s.hist[:s.max-1]
	}
	s.hist = append(s.hist, v)
	out := make([]float64, len(s.hist))
	copy(out, s.hist)
	return out
}

// EMA is the leader's smoothing of a worker's stored history (oldest
// first), Java's WorkerMetricStats.computeAverage: an exponential moving
// average seeded with the first valid value, skipping FailedReading. ok is
// false when no value is valid; Java returns 0 then.
func EMA(values []float64, alpha float64) (v float64, ok bool) {
	for _, x := range values {
		if x == FailedReading {
			continue
		}
		if !ok {
			v, ok = x, true
			continue
		}
		v = alpha*x + (1-alpha)*v
	}
	return v, ok
}

// round6 rounds to 6 decimals half-up the way Java's
// BigDecimal.valueOf(v).setScale(6, HALF_UP).doubleValue() does: on the
// shortest decimal that reads back as v, not on the binary value, so
// 0.0000005 becomes 0.000001 as in Java. It does not allocate for values
// below 2^53 millionths.
func round6(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], math.Abs(v), 'e', -1, 64) // d.ddddde±XX
	mant, exp := b, 0
	if i := bytes.IndexByte(b, 'e'); i >= 0 {
		mant = b[:i]
		neg := b[i+1] == '-'
		for _, c := range b[i+2:] { // AppendFloat always writes the exponent's sign
			exp = exp*10 + int(c-'0')
		}
		if neg {
			exp = -exp
		}
	}
	var digits [20]byte
	nd := 0
	for _, c := range mant {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	// v = 0.d1d2…dn × 10^(exp+1); keep the digits down to 10^-6.
	keep := exp + 1 + 6
	if keep >= nd {
		return v // at most 6 decimals already
	}
	if keep < 0 {
		return 0
	}
	var m uint64
	for _, c := range digits[:keep] {
		m = m*10 + uint64(c-'0')
	}
	if digits[keep] >= '5' {
		m++
	}
	if m == 0 {
		return 0 // BigDecimal has no negative zero
	}
	if m >= 1<<53 {
		// float64(m) would round; let the parser round m×10^-6 correctly.
		r, _ := strconv.ParseFloat(strconv.FormatUint(m, 10)+"e-6", 64)
		return math.Copysign(r, v)
	}
	// Both operands are exact, so IEEE division rounds m/10^6 correctly,
	// as BigDecimal.doubleValue does.
	return math.Copysign(float64(m)/1e6, v)
}

// Sampler samples a CPUSource every interval into a Stats, as Java's
// WorkerMetricStatsManager does every inMemoryWorkerMetricsCaptureFrequencyMillis.
type Sampler struct {
	src      CPUSource
	interval time.Duration
	stats    *Stats
	log      *slog.Logger
}

// NewSampler samples src (which must not be nil) every interval (<= 0 means
// DefaultSampleInterval) into a history of history values (<= 0 means
// coordstate.DefaultPersistedMetricValues). A nil log discards.
func NewSampler(src CPUSource, interval time.Duration, history int, log *slog.Logger) *Sampler {
	if interval <= 0 {
		interval = DefaultSampleInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sampler{src: src, interval: interval, stats: NewStats(history), log: log}
}

// Run samples until ctx ends. Like Java it starts after a random delay
// below one interval, so that workers started together do not all call the
// ECS endpoint at once, and waits a full interval after each sample (fixed
// delay). A failed sample adds nothing, so a period without any success
// flushes as FailedReading; failures are logged once per run of failures,
// and the recovery once.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTimer(rand.N(s.interval))
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, err := s.src.Sample(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if failures == 0 {
				s.log.Warn("worker CPU sample failed; a report period without a successful sample is written as -1",
					"source", s.src.Name(), "err", err)
			}
			failures++
		default:
			if failures > 0 {
				s.log.Info("worker CPU sample recovered", "source", s.src.Name(), "failed_samples", failures)
				failures = 0
			}
			s.stats.Add(v)
		}
		t.Reset(s.interval)
	}
}

// Flush is Stats.Flush of the sampled values: call it every
// report interval (coordstate.DefaultMetricsReportInterval) and write the
// result as the worker's "C" history.
func (s *Sampler) Flush() []float64 { return s.stats.Flush() }
