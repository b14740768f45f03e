package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
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

// delay is the full-jitter wait before retry number attempt (0-based).
func (b Backoff) delay(attempt int) time.Duration {
	d := b.Base << min(attempt, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	return rand.N(d) + time.Millisecond
}

// isPermanent classifies an AWS call's error. Client errors (4xx) other than
// throttling and timeouts are permanent; 5xx, throttling, connection failures
// and anything unrecognised are transient, because treating an unknown
// failure as permanent would ack data that never arrived.
func isPermanent(err error) bool {
	if err == nil {
		return false
	}
	if IsPermanent(err) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		s := re.HTTPStatusCode()
		if s >= 500 || s == 429 || s == 408 || isThrottle(err) {
			return false
		}
		return s >= 400
	}
	var ip smithy.InvalidParamsError
	return errors.As(err, &ip)
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	c := ae.ErrorCode()
	return strings.Contains(c, "Throttl") || strings.Contains(c, "TooManyRequests") ||
		c == "SlowDown" || c == "RequestLimitExceeded" || c == "ProvisionedThroughputExceededException" ||
		c == "RequestThrottled" || c == "KMSThrottlingException"
}

// isOutage reports whether a permanent-looking error says the whole sink
// is unusable rather than that one request was bad: credentials or
// permissions refused, the table, topic, queue or bucket missing, its KMS
// key unusable. Acking with such an error would stop every shard for
// something an operator fixes without a restart, and dead-lettering the
// rows would move every row of the outage to the dead-letter queue, so the
// sink keeps retrying instead (holding its batches unacked) and says so in
// Healthy.
func isOutage(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch c := ae.ErrorCode(); c {
		case "AccessDenied", "AccessDeniedException", "AuthorizationError", "Forbidden",
			"UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId",
			"SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "MissingAuthenticationToken",
			"ResourceNotFoundException", "NoSuchBucket", "NotFound", "NotFoundException",
			"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
			"InvalidSecurity", "AuthFailure", "OptInRequired":
			return true
		default:
			if strings.HasPrefix(c, "KMS") {
				return true
			}
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case 401, 403, 404:
			return true
		}
	}
	return false
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
	backoff Backoff
	m       *sinkMetrics
	log     *slog.Logger
	h       *health
}

func newRetrier(name string, b Backoff, m *sinkMetrics, log *slog.Logger) *retrier {
	return &retrier{name: name, backoff: b.withDefaults(), m: m, log: log, h: &health{name: name, gauge: m.failing}}
}

// do runs fn until it succeeds, fails permanently (returned as a
// *PermanentError) or ctx ends (ctx's error, wrapping the last failure).
// A sink-wide refusal (isOutage) is retried like a transient failure, at
// the backoff's maximum, until it is fixed.
func (r *retrier) do(ctx context.Context, op string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			r.h.ok()
			return nil
		}
		outage := isOutage(err)
		if !outage && isPermanent(err) {
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
		d := r.backoff.delay(attempt)
		if outage {
			r.m.outage.Inc()
			d = r.backoff.Max
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
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		r.m.retries.Inc()
	}
}
