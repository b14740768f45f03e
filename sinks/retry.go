package sinks

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
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

// retrier runs calls with the sink's backoff and counts what happens.
type retrier struct {
	name    string
	backoff Backoff
	m       *sinkMetrics
	log     *slog.Logger
}

// do runs fn until it succeeds, fails permanently (returned as a
// *PermanentError) or ctx ends (ctx's error, wrapping the last failure).
func (r *retrier) do(ctx context.Context, op string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if isPermanent(err) {
			r.m.permanent.Inc()
			if !IsPermanent(err) {
				err = &PermanentError{Sink: r.name, Err: err}
			}
			return err
		}
		r.m.transient.Inc()
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		d := r.backoff.delay(attempt)
		if attempt == 0 || attempt%10 == 9 {
			r.log.Warn("sink call failed; retrying", "sink", r.name, "op", op, "attempt", attempt+1, "in", d, "err", err)
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
