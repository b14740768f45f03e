package retry

import (
	"context"
	"math"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestIntervalDoublesUpToTheCap(t *testing.T) {
	maxDuration := time.Duration(math.MaxInt64)
	for _, tc := range []struct {
		name    string
		p       Policy
		attempt int
		want    time.Duration
	}{
		{"first", Policy{Base: 100 * ms, Cap: 5 * time.Second}, 0, 100 * ms},
		{"second", Policy{Base: 100 * ms, Cap: 5 * time.Second}, 1, 200 * ms},
		{"below the cap", Policy{Base: 100 * ms, Cap: 5 * time.Second}, 5, 3200 * ms},
		{"at the cap", Policy{Base: 100 * ms, Cap: 5 * time.Second}, 6, 5 * time.Second},
		{"long past the cap", Policy{Base: 100 * ms, Cap: 5 * time.Second}, 10_000, 5 * time.Second},
		{"the largest attempt", Policy{Base: 100 * ms, Cap: 5 * time.Second}, math.MaxInt, 5 * time.Second},
		{"negative attempt", Policy{Base: 100 * ms, Cap: 5 * time.Second}, -3, 100 * ms},
		{"cap is a power of two away", Policy{Base: time.Second, Cap: 8 * time.Second}, 3, 8 * time.Second},
		{"base above the cap", Policy{Base: 10 * time.Second, Cap: 5 * time.Second}, 0, 5 * time.Second},
		{"no base", Policy{Cap: 5 * time.Second}, 4, 0},
		{"negative base", Policy{Base: -ms, Cap: 5 * time.Second}, 4, 0},
		{"uncapped", Policy{Base: ms}, 10, 1024 * ms},
		{"uncapped never overflows", Policy{Base: ms}, 200, maxDuration},
		{"a cap near the largest duration", Policy{Base: time.Hour, Cap: maxDuration}, 100, maxDuration},
	} {
		if got := tc.p.Interval(tc.attempt); got != tc.want {
			t.Errorf("%s: %+v.Interval(%d) = %v, want %v", tc.name, tc.p, tc.attempt, got, tc.want)
		}
	}
}

// The extremes of the draw, with the random source pinned to its lowest
// and highest answers: a wait lies in (interval·(1−Jitter), interval].
func TestDelayJitterRange(t *testing.T) {
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	for _, tc := range []struct {
		name        string
		p           Policy
		attempt     int
		long, short time.Duration // the draws with lowest and highest
	}{
		{"full jitter", Policy{Base: 100 * ms, Cap: 10 * time.Second, Jitter: FullJitter}, 2, 400 * ms, 1},
		{"equal jitter", Policy{Base: time.Second, Cap: 5 * time.Minute, Jitter: EqualJitter}, 0, time.Second, 500*ms + 1},
		{"equal jitter at the cap", Policy{Base: time.Second, Cap: 5 * time.Minute, Jitter: EqualJitter}, 20, 5 * time.Minute, 150*time.Second + 1},
		{"no jitter", Policy{Base: 100 * ms, Cap: time.Second}, 1, 200 * ms, 200 * ms},
		{"jitter above 1 is full", Policy{Base: 100 * ms, Cap: time.Second, Jitter: 3}, 0, 100 * ms, 1},
		{"negative jitter is none", Policy{Base: 100 * ms, Cap: time.Second, Jitter: -1}, 0, 100 * ms, 100 * ms},
		{"no base", Policy{Jitter: FullJitter}, 3, 0, 0},
		{"a nanosecond interval", Policy{Base: 1, Cap: 1, Jitter: EqualJitter}, 0, 1, 1},
	} {
		if got := tc.p.delay(tc.attempt, lowest); got != tc.long {
			t.Errorf("%s: longest draw %v, want %v", tc.name, got, tc.long)
		}
		if got := tc.p.delay(tc.attempt, highest); got != tc.short {
			t.Errorf("%s: shortest draw %v, want %v", tc.name, got, tc.short)
		}
	}
}

// Delay with the real random source stays in its range and spreads.
func TestDelayDrawsWithinTheInterval(t *testing.T) {
	for _, p := range []Policy{
		{Base: 50 * ms, Cap: time.Second, Jitter: FullJitter},
		{Base: 200 * ms, Cap: 5 * time.Second, Jitter: EqualJitter},
		{Base: 75 * ms, Cap: 3 * time.Second, Jitter: 2.0 / 3},
	} {
		for attempt := range 10 {
			hi := p.Interval(attempt)
			lo := hi - time.Duration(float64(hi)*p.Jitter)
			seen := map[time.Duration]bool{}
			for range 200 {
				d := p.Delay(attempt)
				if d <= lo || d > hi {
					t.Fatalf("%+v attempt %d: delay %v outside (%v, %v]", p, attempt, d, lo, hi)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Errorf("%+v attempt %d: 200 draws gave %d distinct delays", p, attempt, len(seen))
			}
		}
	}
}

// The schedules the callers had before they shared this one, as policies:
// each old range of waits is the new one (ends aside).
func TestPoliciesKeepTheOldSchedules(t *testing.T) {
	// loadtest: waits in [b/2, 3b/2) with b from 50 ms doubling to 2 s.
	lt := Policy{Base: 75 * ms, Cap: 3 * time.Second, Jitter: 2.0 / 3}
	b := 50 * ms
	for attempt := range 12 {
		hi := lt.Interval(attempt)
		lo := hi - time.Duration(float64(hi)*lt.Jitter)
		if lo != b/2 || hi != 3*b/2 {
			t.Errorf("loadtest attempt %d: (%v, %v], was [%v, %v)", attempt, lo, hi, b/2, 3*b/2)
		}
		b = min(2*b, 2*time.Second)
	}
	// consumer: cur from base doubling to the cap, waits in [cur/2, cur].
	cons := Policy{Base: time.Second, Cap: 5 * time.Minute, Jitter: EqualJitter}
	cur := time.Duration(0)
	for attempt := range 12 {
		if cur == 0 {
			cur = time.Second
		} else {
			cur = min(2*cur, 5*time.Minute)
		}
		if got := cons.Interval(attempt); got != cur {
			t.Errorf("consumer attempt %d: interval %v, was %v", attempt, got, cur)
		}
	}
	// sinks and scorer: full jitter below Base<<attempt, capped.
	sk := Policy{Base: 100 * ms, Cap: 10 * time.Second, Jitter: FullJitter}
	for attempt := range 12 {
		if want := min(100*ms<<attempt, 10*time.Second); sk.Interval(attempt) != want {
			t.Errorf("sinks attempt %d: interval %v, was %v", attempt, sk.Interval(attempt), want)
		}
	}
}

func TestBackoffWalksAndResets(t *testing.T) {
	b := NewBackoff(Policy{Base: 100 * ms, Cap: 500 * ms})
	if b.Attempt() != 0 || b.Next() != 100*ms {
		t.Fatalf("fresh: attempt %d, next %v", b.Attempt(), b.Next())
	}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Delay())
	}
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 500 * ms, 500 * ms}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if b.Attempt() != 5 || b.Next() != 500*ms {
		t.Fatalf("after 5: attempt %d, next %v", b.Attempt(), b.Next())
	}
	b.Reset()
	if b.Attempt() != 0 || b.Next() != 100*ms || b.Delay() != 100*ms {
		t.Fatalf("after reset: attempt %d, next %v", b.Attempt(), b.Next())
	}
}

// Next promises the bound the following Delay draws under.
func TestBackoffNextBoundsTheDelay(t *testing.T) {
	b := &Backoff{Policy: Policy{Base: 10 * ms, Cap: 80 * ms, Jitter: FullJitter}, randN: func(int64) int64 { return 0 }}
	for range 6 {
		next := b.Next()
		if d := b.Delay(); d != next {
			t.Fatalf("longest draw %v, Next promised %v", d, next)
		}
	}
}

func TestWaitHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := NewBackoff(Policy{Base: time.Hour, Cap: time.Hour, Jitter: FullJitter})
	if b.Wait(ctx) {
		t.Fatal("Wait reported the delay elapsed on a canceled context")
	}
	if b.Attempt() != 1 {
		t.Fatalf("a canceled wait still counts as an attempt: %d", b.Attempt())
	}
	if Sleep(ctx, 0) || Sleep(ctx, -time.Second) {
		t.Fatal("Sleep of nothing on a canceled context reported live")
	}
	if !Sleep(context.Background(), 0) || !NewBackoff(Policy{}).Wait(context.Background()) {
		t.Fatal("a zero wait on a live context reported canceled")
	}
	if !Sleep(context.Background(), time.Nanosecond) {
		t.Fatal("a nanosecond sleep on a live context reported canceled")
	}
}
