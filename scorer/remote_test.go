package scorer

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

// sdkClient returns a real SageMaker runtime client aimed at url.
func sdkClient(url string) *sagemakerruntime.Client {
	return sagemakerruntime.New(sagemakerruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	})
}

// startServe runs the model server on a loopback port, wrapped by mw.
func startServe(t *testing.T, m *Model, mw func(http.Handler) http.Handler) string {
	t.Helper()
	h := NewHandler(m, ServeOptions{})
	if mw != nil {
		h = mw(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, h, 5*time.Second, 30*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// The remote scorer, through the real SDK client and the model server over
// HTTP, returns exactly the embedded model's scores, in order, across many
// requests, with variant and custom attributes passed through.
func TestRemoteThroughServe(t *testing.T) {
	m := loadFixtureModel(t, "multi_softprob.json")
	in := readTable(t, "testdata/fidelity/multi_softprob.input.csv")
	cols, _ := in.Select(m.Features())
	rec := recordOf(t, m.Features(), cols)

	var mu sync.Mutex
	var requests int
	var attrs, variants []string
	url := startServe(t, m, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			requests++
			attrs = append(attrs, r.Header.Get("X-Amzn-SageMaker-Custom-Attributes"))
			variants = append(variants, r.Header.Get("X-Amzn-SageMaker-Target-Variant"))
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	reg := prometheus.NewRegistry()
	met, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRemote(sdkClient(url), RemoteConfig{
		Endpoint: "fraud", Features: m.Features(), Outputs: 3,
		TargetVariant: "blue", CustomAttributes: "trace=1",
		MaxRowsPerRequest: 25, Metrics: met,
	})
	if err != nil {
		t.Fatal(err)
	}
	var res, want Result
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	e, _ := NewEmbedded(m, rec.Schema(), nil)
	if err := e.Score(t.Context(), rec, &want); err != nil {
		t.Fatal(err)
	}
	if res.Err != nil || res.Count(SourcePrimary) != in.Rows {
		t.Fatalf("err %v, %d of %d rows primary", res.Err, res.Count(SourcePrimary), in.Rows)
	}
	for k := range 3 {
		for i := range in.Rows {
			if res.Scores[k][i] != want.Scores[k][i] {
				t.Fatalf("row %d class %d: remote %v, embedded %v", i, k, res.Scores[k][i], want.Scores[k][i])
			}
		}
	}
	if wantReq := (in.Rows + 24) / 25; requests != wantReq {
		t.Errorf("%d requests, want %d", requests, wantReq)
	}
	for i := range attrs {
		if attrs[i] != "trace=1" || variants[i] != "blue" {
			t.Fatalf("request %d: custom attributes %q, variant %q", i, attrs[i], variants[i])
		}
	}
	if res.Version != "sagemaker:fraud/blue" {
		t.Errorf("version %q", res.Version)
	}
	if got := testutil.ToFloat64(met.rowsScored.WithLabelValues("primary")); got != float64(in.Rows) {
		t.Errorf("rows metric %v", got)
	}
}

// faultyHandler wraps the model server with a switchable fault.
type faultyHandler struct {
	h     http.Handler
	fault atomic.Int32 // 0 none, 1 HTTP 500, 2 throttle, 3 hang
	calls atomic.Int32
}

func (f *faultyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	switch f.fault.Load() {
	case 1:
		w.Header().Set("X-Amzn-ErrorType", "ServiceUnavailable")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"message":"down for maintenance"}`))
		return
	case 2:
		w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"message":"Rate exceeded"}`))
		return
	case 3:
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	}
	f.h.ServeHTTP(w, r)
}

type breakerLog struct {
	mu     sync.Mutex
	events []BreakerEvent
}

func (b *breakerLog) add(e BreakerEvent) {
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
}

func (b *breakerLog) snapshot() []BreakerEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

func (b *breakerLog) states() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s []string
	for _, e := range b.events {
		s = append(s, e.To.String())
	}
	return strings.Join(s, ",")
}

// breakerFixture is a remote scorer in front of a faulty model server, with
// the embedded model as fallback (or none).
func breakerFixture(t *testing.T, withFallback bool, timeout time.Duration, wrap func(string) string) (*Remote, *faultyHandler, *breakerLog, *Model) {
	m := loadFixtureModel(t, "binary_logistic.json")
	fh := &faultyHandler{}
	url := startServe(t, m, func(h http.Handler) http.Handler { fh.h = h; return fh })
	if wrap != nil {
		url = wrap(url)
	}
	bl := &breakerLog{}
	cfg := RemoteConfig{
		Endpoint: "ep", Features: m.Features(), MaxRowsPerRequest: 40,
		Timeout: timeout, MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Breaker:         BreakerConfig{ConsecutiveFailures: 3, OpenFor: 300 * time.Millisecond, ConsecutiveTimeouts: 2},
		OnBreakerChange: bl.add,
		Concurrency:     1,
	}
	if withFallback {
		fb, err := NewEmbedded(m, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Fallback = fb
	}
	rs, err := NewRemote(sdkClient(url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rs, fh, bl, m
}

// checkAccounted asserts every row is scored by the endpoint or the
// fallback (with the embedded model's exact score) or handed back unscored.
func checkAccounted(t *testing.T, res *Result, want *Result) {
	t.Helper()
	for i := range res.Len() {
		switch res.Source[i] {
		case SourcePrimary, SourceFallback:
			if res.Scores[0][i] != want.Scores[0][i] {
				t.Fatalf("row %d (%v): %v, want %v", i, res.Source[i], res.Scores[0][i], want.Scores[0][i])
			}
		case SourceNone:
			if !math.IsNaN(res.Scores[0][i]) {
				t.Fatalf("unscored row %d has score %v", i, res.Scores[0][i])
			}
		default:
			t.Fatalf("row %d: source %v", i, res.Source[i])
		}
	}
}

// faultCycle drives a breaker through a fault and its removal: the breaker
// opens, rows fall back (or are handed back), and once the fault is gone a
// half-open probe closes it again.
func faultCycle(t *testing.T, rs *Remote, bl *breakerLog, m *Model, withFallback bool, inject, heal func()) {
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(m.Features())
	rec := recordOf(t, m.Features(), cols)
	var want Result
	e, _ := NewEmbedded(m, nil, nil)
	if err := e.Score(t.Context(), rec, &want); err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	if res.Count(SourcePrimary) != in.Rows {
		t.Fatalf("healthy endpoint: %d of %d rows primary (err %v)", res.Count(SourcePrimary), in.Rows, res.Err)
	}
	inject()
	for range 3 {
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
		checkAccounted(t, &res, &want)
		if res.Count(SourcePrimary) != 0 {
			t.Fatalf("faulty endpoint scored %d rows", res.Count(SourcePrimary))
		}
		src := SourceNone
		if withFallback {
			src = SourceFallback
		}
		if res.Count(src) != in.Rows || res.Err == nil {
			t.Fatalf("faulty endpoint: %d of %d rows %v, err %v", res.Count(src), in.Rows, src, res.Err)
		}
		if withFallback && res.FallbackVersion != m.Version() {
			t.Fatalf("fallback version %q", res.FallbackVersion)
		}
	}
	if rs.State() != BreakerOpen {
		t.Fatalf("breaker %v after repeated failures, want open (events %s)", rs.State(), bl.states())
	}
	heal()
	deadline := time.Now().Add(10 * time.Second)
	for rs.State() != BreakerClosed || res.Count(SourcePrimary) != in.Rows {
		if time.Now().After(deadline) {
			t.Fatalf("breaker did not recover: state %v, events %s, err %v", rs.State(), bl.states(), res.Err)
		}
		time.Sleep(50 * time.Millisecond)
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
		checkAccounted(t, &res, &want)
	}
	if got := bl.states(); !strings.HasPrefix(got, "open,half-open") || !strings.HasSuffix(got, "closed") {
		t.Fatalf("breaker transitions %s, want open, half-open, ..., closed", got)
	}
}

func TestBreakerServerErrorsWithFallback(t *testing.T) {
	rs, fh, bl, m := breakerFixture(t, true, 2*time.Second, nil)
	faultCycle(t, rs, bl, m, true, func() { fh.fault.Store(1) }, func() { fh.fault.Store(0) })
}

func TestBreakerThrottlingWithoutFallback(t *testing.T) {
	rs, fh, bl, m := breakerFixture(t, false, 2*time.Second, nil)
	faultCycle(t, rs, bl, m, false, func() { fh.fault.Store(2) }, func() { fh.fault.Store(0) })
}

func TestBreakerTimeouts(t *testing.T) {
	rs, fh, bl, m := breakerFixture(t, true, 150*time.Millisecond, nil)
	faultCycle(t, rs, bl, m, true, func() { fh.fault.Store(3) }, func() { fh.fault.Store(0) })
}

// While the breaker is open, batches are not sent to the endpoint at all.
func TestBreakerOpenSendsNothing(t *testing.T) {
	rs, fh, _, m := breakerFixture(t, true, 2*time.Second, nil)
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(m.Features())
	rec := recordOf(t, m.Features(), cols)
	fh.fault.Store(1)
	var res Result
	for rs.State() != BreakerOpen {
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
	}
	before := fh.calls.Load()
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	if fh.calls.Load() != before || res.Count(SourceFallback) != in.Rows || !errors.Is(res.Err, gobreaker.ErrOpenState) {
		t.Fatalf("open breaker: %d calls made, %d fallback rows, err %v", fh.calls.Load()-before, res.Count(SourceFallback), res.Err)
	}
}

func TestParseCSVScoresShapes(t *testing.T) {
	rows := []int32{0, 1, 2}
	sc := alloc(2, 3)
	if err := parseCSVScores([]byte("0.1,0.9\n0.2,0.8\n0.3,0.7\n"), rows, sc); err != nil || sc[1][2] != 0.7 || sc[0][1] != 0.2 {
		t.Fatalf("lines: %v %v", err, sc)
	}
	// XGBoost's real-time multi-class answer: one line of bracketed rows.
	if err := parseCSVScores([]byte("[0.4, 0.6],[0.25, 0.75],[0.5, 0.5]"), rows, sc); err != nil || sc[1][1] != 0.75 || sc[0][2] != 0.5 {
		t.Fatalf("bracketed rows: %v %v", err, sc)
	}
	one := alloc(1, 3)
	if err := parseCSVScores([]byte("0.5,0.25,0.125"), rows, one); err != nil || one[0][2] != 0.125 {
		t.Fatalf("single line: %v %v", err, one)
	}
	// Scores land on the rows sent, in the order sent.
	if err := parseCSVScores([]byte("1\n2\n3\n"), []int32{2, 0, 1}, one); err != nil || one[0][0] != 2 || one[0][2] != 1 {
		t.Fatalf("permuted rows: %v %v", err, one)
	}
	if err := parseCSVScores([]byte("0.5,0.25"), rows, one); err == nil {
		t.Fatal("short response accepted")
	}
	if err := parseCSVScores([]byte("0.5,x,1"), rows, one); err == nil {
		t.Fatal("non-number accepted")
	}
}

// The payload limit the scorer and the model server enforce is the one the
// configuration checks against.
func TestPayloadLimitsAgree(t *testing.T) {
	if MaxPayloadBytes != remotespec.MaxPayloadBytes {
		t.Fatalf("scorer.MaxPayloadBytes %d, remotespec.MaxPayloadBytes %d", MaxPayloadBytes, remotespec.MaxPayloadBytes)
	}
}
