// Package retry is the one home of the rules for calling AWS again after a
// failure: a capped exponential backoff with jitter (Policy, Backoff) and a
// classifier that says what a failed call's error means (Classify). The
// consumer's reads, the sinks' writes, the SageMaker scorer and the load
// test's publisher each keep their own schedule and their own reaction to
// a class, but none restates which errors are throttling, which are worth
// retrying and which need an operator.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter fractions for Policy.Jitter.
const (
	// FullJitter draws every wait from (0, interval]: retries of clients
	// that failed together spread out the most, which is what AWS
	// recommends for clients competing for one resource.
	FullJitter = 1.0
	// EqualJitter draws every wait from (interval/2, interval]: a slow
	// retry stays slow, so a pace meant to spare a failing service is kept.
	EqualJitter = 0.5
)

// Policy is a capped exponential backoff schedule: the interval of wait
// number n (from 0) is Base·2ⁿ, at most Cap, and the wait itself is drawn
// at random from its top Jitter part. The zero Policy never waits.
type Policy struct {
	// Base is the first interval; zero or less means no wait at all.
	Base time.Duration
	// Cap bounds every interval; zero or less means no bound (short of
	// overflowing a Duration).
	Cap time.Duration
	// Jitter is the fraction of each interval that is random, from 0 (no
	// jitter: every wait is the interval) to 1 (FullJitter). A wait is
	// drawn from (interval·(1−Jitter), interval].
	Jitter float64
}

// Interval returns the upper bound of wait number attempt (from 0):
// Base·2^attempt, at most Cap. It never overflows, however many attempts
// a caller that retries until it is stopped has made.
func (p Policy) Interval(attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	limit := p.Cap
	if limit <= 0 {
		limit = time.Duration(1<<63 - 1)
	}
	d := p.Base
	for range max(attempt, 0) {
		if d > limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// Delay returns a jittered wait for attempt, drawn from
// (Interval·(1−Jitter), Interval].
func (p Policy) Delay(attempt int) time.Duration {
	return p.delay(attempt, rand.Int64N)
}

// delay is Delay with the random source given, so tests can pin the
// extremes of the draw. randN(n) must return a value in [0, n).
func (p Policy) delay(attempt int, randN func(int64) int64) time.Duration {
	d := p.Interval(attempt)
	j := min(max(p.Jitter, 0), 1)
	spread := int64(float64(d) * j)
	if spread <= 0 {
		return d
	}
	return d - time.Duration(randN(spread))
}

// Backoff walks a Policy: each Wait sleeps for the next attempt's jittered
// delay, and Reset starts over after a success. It is not safe for
// concurrent use; each retrying loop holds its own.
type Backoff struct {
	Policy
	attempt int
	// randN overrides the random source in tests; nil means math/rand/v2.
	randN func(int64) int64
}

// NewBackoff returns a Backoff at its first attempt.
func NewBackoff(p Policy) *Backoff { return &Backoff{Policy: p} }

// Next returns the interval the next Wait draws from (its upper bound),
// without waiting: what a log line or a health report can promise.
func (b *Backoff) Next() time.Duration { return b.Interval(b.attempt) }

// Attempt returns the number of waits since the last Reset: zero means the
// loop is not failing.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts the schedule over from Base.
func (b *Backoff) Reset() { b.attempt = 0 }

// Delay draws the next wait and moves to the following attempt, without
// waiting: for callers that wait in a select of their own.
func (b *Backoff) Delay() time.Duration {
	randN := b.randN
	if randN == nil {
		randN = rand.Int64N
	}
	d := b.delay(b.attempt, randN)
	b.attempt++
	return d
}

// Wait sleeps for the next jittered delay; false if ctx ended first.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Delay()) }

// Sleep waits for d or until ctx ends, whichever is first; it reports
// whether d elapsed. A d of zero or less only reports whether ctx is live.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
