package scorer

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// A serverless endpoint's cold start, played by toxiproxy latency past the
// normal timeout but within the cold-start allowance: the first call after
// idle waits for it and scores, without a breaker trip; the same latency on
// a warm endpoint, or without the allowance, is a timeout that trips it.
func TestRemoteServerlessColdStart(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(m.Features())
	rec := recordOf(t, m.Features(), cols)
	want := embeddedScores(t, m, rec)
	env := devstacktest.New(t)
	p := env.Proxy(t, startServe(t, m, nil))
	fb, err := NewEmbedded(m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const timeout, latency, idle = 200 * time.Millisecond, 600 * time.Millisecond, time.Second
	newRemote := func(cold time.Duration) (*Remote, *breakerLog) {
		bl := &breakerLog{}
		rs, err := NewRemote(sdkClient(p.URL()), RemoteConfig{Endpoint: "ep", Features: m.Features(), Serverless: true,
			Timeout: timeout, ColdStartTimeout: cold, ColdAfterIdle: idle, MaxAttempts: 1, MaxRowsPerRequest: 1000,
			Breaker: BreakerConfig{ConsecutiveTimeouts: 1, ConsecutiveFailures: 1}, OnBreakerChange: bl.add, Fallback: fb})
		if err != nil {
			t.Fatal(err)
		}
		return rs, bl
	}
	ctx := context.Background()
	rs, bl := newRemote(20 * time.Second)
	if err := p.AddLatency(ctx, latency); err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	sameScores(t, "first call, cold", &res, want)
	if rs.State() != BreakerClosed || bl.states() != "" {
		t.Fatalf("cold start tripped the breaker: %v, events %s", rs.State(), bl.states())
	}

	// The control: no allowance, the same latency is a timeout.
	ctrl, cbl := newRemote(-1)
	if err := ctrl.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	if res.Count(SourceFallback) != in.Rows || !errors.Is(res.Err, ErrRemoteTimeout) || ctrl.State() != BreakerOpen {
		t.Fatalf("without the allowance: %d rows fallback, err %v, breaker %v (%s)", res.Count(SourceFallback), res.Err, ctrl.State(), cbl.states())
	}

	if err := p.RemoveToxic(ctx, "latency"); err != nil {
		t.Fatal(err)
	}
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	sameScores(t, "warm", &res, want)
	// Idle past ColdAfterIdle: cold again, and the next slow start is
	// waited for too.
	waitFor(t, "the endpoint to go cold", func() bool { return rs.fixed.cold(time.Now().UnixNano(), idle) })
	if err := p.AddLatency(ctx, latency); err != nil {
		t.Fatal(err)
	}
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	sameScores(t, "first call after idle", &res, want)
	if rs.State() != BreakerClosed || bl.states() != "" {
		t.Fatalf("cold start after idle tripped the breaker: %v, events %s", rs.State(), bl.states())
	}
	// Warm now: the allowance was for the first call only.
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	if res.Count(SourceFallback) != in.Rows || rs.State() != BreakerOpen {
		t.Fatalf("warm endpoint past its timeout: %d rows fallback, breaker %v", res.Count(SourceFallback), rs.State())
	}
}

// notReady answers ModelNotReadyException (HTTP 429), as SageMaker does
// while a serverless endpoint provisions or a multi-model endpoint loads
// the model, for its first left calls.
type notReady struct {
	h     http.Handler
	left  atomic.Int32
	calls atomic.Int32
}

func (n *notReady) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.calls.Add(1)
	if n.left.Add(-1) >= 0 {
		w.Header().Set("X-Amzn-ErrorType", "ModelNotReadyException")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"message":"the model is loading; retry"}`))
		return
	}
	n.h.ServeHTTP(w, withoutTarget(r)) // a multi-model endpoint's routing
}

// ModelNotReadyException within the cold-start allowance is retried (past
// MaxAttempts) until the model is ready, and never counts against the
// breaker; without the allowance it is a failure like any other.
func TestRemoteModelNotReady(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(m.Features())
	rec := recordOf(t, m.Features(), cols)
	want := embeddedScores(t, m, rec)
	nr := &notReady{}
	url := throughToxiproxy(t, m, func(h http.Handler) http.Handler { nr.h = h; return nr })
	fb, err := NewEmbedded(m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, allowance := range []time.Duration{20 * time.Second, -1} {
		met, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		bl := &breakerLog{}
		rs, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "ep", Features: m.Features(), TargetModel: "m.tar.gz",
			ColdStartTimeout: allowance, Timeout: 30 * time.Second, MaxAttempts: 1, MaxRowsPerRequest: 1000, BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
			Breaker: BreakerConfig{ConsecutiveFailures: 1}, OnBreakerChange: bl.add, Fallback: fb, Metrics: met})
		if err != nil {
			t.Fatal(err)
		}
		nr.left.Store(3)
		nr.calls.Store(0)
		var res Result
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
		// ModelNotReadyException is a server_error in the metrics, as before.
		notReadyCalls := testutil.ToFloat64(met.requests.WithLabelValues("ep@m.tar.gz", "server_error"))
		if allowance > 0 {
			sameScores(t, "model loading", &res, want)
			if nr.calls.Load() != 4 || notReadyCalls != 3 || rs.State() != BreakerClosed || bl.states() != "" {
				t.Fatalf("%d calls (%v not ready), breaker %v, events %s", nr.calls.Load(), notReadyCalls, rs.State(), bl.states())
			}
			continue
		}
		if res.Count(SourceFallback) != in.Rows || rs.State() != BreakerOpen || nr.calls.Load() != 1 ||
			res.Err == nil || !strings.Contains(res.Err.Error(), "model not ready") {
			t.Fatalf("no allowance: %d rows fallback, breaker %v, %d calls, err %v", res.Count(SourceFallback), rs.State(), nr.calls.Load(), res.Err)
		}
	}
}
