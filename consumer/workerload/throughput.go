package workerload

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Throughput is one held lease's throughput, as Java's LeaseStatsRecorder
// computes it for the throughputKBps attribute the renewer writes: the
// bytes processed in a renewal window, in KB per second, smoothed by an
// exponential moving average (ThroughputEMAAlpha) and rounded to 6
// decimals. The zero value is ready; drop it with the lease.
//
// Java keeps timestamped samples and, at each renewal, sums those younger
// than the renewal interval. We count bytes since the previous KBps call
// and divide by the time since it, on the monotonic clock: with renewals
// at a fixed rate both read the same window, ours without a queue per
// lease, and a renewal that runs late (a loaded worker, a slow table)
// neither loses nor double-counts bytes, nor inflates the rate by
// dividing a longer window's bytes by the configured interval.
type Throughput struct {
	bytes    atomic.Int64 // since the last KBps
	observed atomic.Bool

	mu     sync.Mutex
	ema    float64
	seeded bool
	last   time.Time // the previous KBps call
}

// Add records n bytes of processed records (after deaggregation, Σ of
// record data lengths, as Java's ProcessTask.publishLeaseStats). It is
// called per batch from the shard's goroutine, allocates nothing and may
// run concurrently with KBps. n <= 0 records nothing: Java records only
// batches it hands to the processor, which by default are never empty.
func (t *Throughput) Add(n int) {
	if n <= 0 {
		return
	}
	t.bytes.Add(int64(n))
	if !t.observed.Load() {
		t.observed.Store(true)
	}
}

// KBps closes the window that began at the previous call, feeds its
// bytes/1024/seconds into the moving average and returns the average
// rounded to 6 decimals half-up, the value to write as throughputKBps.
// The window is the time since the previous call; the first call takes
// window (the renew interval, as Java divides by renewerIntervalMillis).
// A window of 0 or less leaves the average as it is.
func (t *Throughput) KBps(window time.Duration) float64 {
	return t.kbpsAt(time.Now(), window)
}

func (t *Throughput) kbpsAt(now time.Time, window time.Duration) float64 {
	b := t.bytes.Swap(0)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() {
		window = now.Sub(t.last)
	}
	t.last = now
	if window > 0 {
		// Java divides by renewerFrequencyInMillis / 1000.0; both operands
		// here are exact too, so the quotient rounds the same way.
		kbps := float64(b) / 1024 / (float64(window) / float64(time.Second))
		if t.seeded {
			t.ema = ThroughputEMAAlpha*kbps + (1-ThroughputEMAAlpha)*t.ema
		} else {
			t.ema, t.seeded = kbps, true
		}
	}
	return round6(t.ema)
}

// Seed starts the moving average at the lease's stored throughputKBps when
// the lease moves to this worker, so that it keeps its weight with the
// leader until this worker has measured it. NaN, infinite and negative
// values are ignored.
//
// Java instead records kbps×1024 bytes as one sample at pick-up, which its
// first renewal adds to that window's bytes and divides by the interval
// (3.3 s by default): the stored value counts for about a third, once.
func (t *Throughput) Seed(kbps float64) {
	if math.IsNaN(kbps) || math.IsInf(kbps, 0) || kbps < 0 {
		return
	}
	t.mu.Lock()
	t.ema, t.seeded = kbps, true
	t.mu.Unlock()
	t.observed.Store(true)
}

// Observed reports whether anything was recorded (Add with n > 0, or
// Seed). Java's recorder returns null for a lease with nothing recorded,
// and the renewer then leaves throughputKBps out of the UpdateItem; a
// caller mirrors that by writing KBps only when Observed is true.
func (t *Throughput) Observed() bool { return t.observed.Load() }
