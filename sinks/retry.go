package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/internal/retry"
)

// Backoff is the retry schedule for transient failures: full-jitter
// exponential backoff from Base up to Max between attempts. Sinks retry
// transient failures until they succeed or the sink's context ends, because
// giving up would lose data; the pipeline sees the outage as acks that stop
// coming, and its checkpoints stop with them.
type Backoff struct {
	// Base is the first delay's upper bound; default 100 ms.
	Base time.Duration
	// Max caps the delay; default 10 s.
	Max time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	return b
}

// policy is the schedule as the shared backoff takes it: full jitter, so
// the sinks of many workers retrying one service spread out.
func (b Backoff) policy() retry.Policy {
	return retry.Policy{Base: b.Base, Cap: b.Max, Jitter: retry.FullJitter}
}

// classify sorts a failed call for the retrier. A request the service
// refused (retry.Invalid, or a PermanentError a sink made) is permanent; a
// sink-wide refusal (retry.Unavailable: credentials or permissions
// refused, the table, topic, queue or bucket missing, its KMS key
// unusable) is an outage: acking with it would stop every shard for
// something an operator fixes without a restart, and dead-lettering the
// rows would move every row of the outage to the dead-letter queue, so the
// sink keeps retrying instead (holding its batches unacked) and says so in
// Healthy. Everything else (throttling, 5xx, connection failures, and
// anything unrecognised) is transient, because treating an unknown failure
// as permanent would ack data that never arrived.
func classify(err error) (permanent, outage bool) {
	switch c := retry.Classify(err); {
	case c == retry.Unavailable:
		return false, true
	case c == retry.Invalid:
		return true, false
	}
	return IsPermanent(err), false
}

// OutageAfter is how long a sink's calls may keep failing transiently
// (throttling, 5xx, connection errors) before Healthy reports an outage.
// Sink-wide refusals (access denied, missing resource) are reported at once.
const OutageAfter = 30 * time.Second

// health is a sink's view of its service: failing since when, with what.
// Every answer the service gives about a request itself (success, or a
// refusal of that one request) means the sink is up.
type health struct {
	name  string
	gauge prometheus.Gauge

	mu      sync.Mutex
	failing bool
	outage  bool
	since   time.Time
	last    error
}

func (h *health) fail(err error, outage bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		h.failing, h.since = true, time.Now()
		h.gauge.Inc()
	}
	h.outage, h.last = outage, err
}

func (h *health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		h.failing, h.outage, h.last = false, false, nil
		h.gauge.Dec()
	}
}

// check implements Healthy.
func (h *health) check(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.failing:
		return nil
	case h.outage:
		return fmt.Errorf("sink %s unavailable since %s: %w", h.name, h.since.UTC().Format(time.RFC3339), h.last)
	case now.Sub(h.since) >= OutageAfter:
		return fmt.Errorf("sink %s failing for %s: %w", h.name, now.Sub(h.since).Round(time.Second), h.last)
	}
	return nil
}

// retrier runs calls with the sink's backoff and counts what happens.
type retrier struct {
	name    string
	backoff retry.Policy
	m       *sinkMetrics
	log     *slog.Logger
	h       *health
}

func newRetrier(name string, b Backoff, m *sinkMetrics, log *slog.Logger) *retrier {
	return &retrier{name: name, backoff: b.withDefaults().policy(), m: m, log: log, h: &health{name: name, gauge: m.failing}}
}

// do runs fn until it succeeds, fails permanently (returned as a
// *PermanentError) or ctx ends (ctx's error, wrapping the last failure).
// A sink-wide refusal (an outage, see classify) is retried like a
// transient failure, at the backoff's maximum, until it is fixed.
func (r *retrier) do(ctx context.Context, op string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			r.h.ok()
			return nil
		}
		permanent, outage := classify(err)
		if permanent {
			// The service answered about this request: the sink is up.
			r.h.ok()
			r.m.permanent.Inc()
			if !IsPermanent(err) {
				err = &PermanentError{Sink: r.name, Err: err}
			}
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		r.h.fail(err, outage)
		d := r.backoff.Delay(attempt)
		if outage {
			r.m.outage.Inc()
			d = r.backoff.Cap
			if attempt%10 == 0 {
				r.log.Error("sink unavailable (permissions or a missing resource); its batches wait until it is fixed",
					"sink", r.name, "op", op, "attempt", attempt+1, "in", d, "err", err)
			}
		} else {
			r.m.transient.Inc()
			if attempt == 0 || attempt%10 == 9 {
				r.log.Warn("sink call failed; retrying", "sink", r.name, "op", op, "attempt", attempt+1, "in", d, "err", err)
			}
		}
		if !retry.Sleep(ctx, d) {
			return errors.Join(ctx.Err(), err)
		}
		r.m.retries.Inc()
	}
}
