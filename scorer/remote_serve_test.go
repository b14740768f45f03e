package scorer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/scorer/remotespec"
)

// seenRequest is what the server side saw of one InvokeEndpoint call.
type seenRequest struct {
	contentType, accept, targetModel, component, hostname string
	bytes                                                 int
	body                                                  []byte
}

// recorder is middleware in front of the model server that keeps what each
// request carried.
type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
	keep bool // keep bodies too
}

func (rc *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s := seenRequest{contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"),
			targetModel: r.Header.Get("X-Amzn-SageMaker-Target-Model"),
			component:   r.Header.Get("X-Amzn-SageMaker-Inference-Component"),
			hostname:    r.Header.Get("X-Amzn-SageMaker-Target-Container-Hostname"), bytes: len(body)}
		if rc.keep {
			s.body = body
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, s)
		rc.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, withoutTarget(r)) // a multi-model endpoint's routing
	})
}

func (rc *recorder) seen() []seenRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]seenRequest(nil), rc.reqs...)
}

// throughToxiproxy starts the model server (wrapped by mw) and returns the
// URL of a toxiproxy proxy in front of it.
func throughToxiproxy(t *testing.T, m *Model, mw func(http.Handler) http.Handler) string {
	env := devstacktest.New(t)
	return env.Proxy(t, startServe(t, m, mw)).URL()
}

// embeddedScores scores rec with the model in process: what the endpoint
// must answer.
func embeddedScores(t *testing.T, m *Model, rec arrow.RecordBatch) *Result {
	t.Helper()
	e, err := NewEmbedded(m, rec.Schema(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var want Result
	if err := e.Score(t.Context(), rec, &want); err != nil {
		t.Fatal(err)
	}
	return &want
}

// sameScores asserts every row is primary-scored with exactly the embedded
// model's scores (shortest round-trip text in every format loses nothing).
func sameScores(t *testing.T, what string, res, want *Result) {
	t.Helper()
	if res.Err != nil || res.Count(SourcePrimary) != res.Len() {
		t.Fatalf("%s: %d of %d rows primary, err %v", what, res.Count(SourcePrimary), res.Len(), res.Err)
	}
	for k := range want.Scores {
		for i := range res.Len() {
			if res.Scores[k][i] != want.Scores[k][i] {
				t.Fatalf("%s: row %d score %d: remote %v, embedded %v", what, i, k, res.Scores[k][i], want.Scores[k][i])
			}
		}
	}
}

// Every request content type with every accept type, for a binary and a
// multi-class model, through toxiproxy to the real model server: the
// scores are the embedded model's exactly, rows with missing values
// (every value missing in one) included, and each request carried the
// configured types.
func TestRemoteContentTypesThroughServe(t *testing.T) {
	types := []string{remotespec.ContentCSV, remotespec.ContentJSON, remotespec.ContentJSONLines}
	shapes := []string{remotespec.InstanceArray, remotespec.InstanceFeatures, remotespec.InstanceNamed}
	for _, fx := range []struct {
		model   string
		outputs int
	}{{"binary_logistic", 1}, {"multi_softprob", 3}} {
		m := loadFixtureModel(t, fx.model+".json")
		in := readTable(t, "testdata/fidelity/"+fx.model+".input.csv")
		cols, _ := in.Select(m.Features())
		if !hasNaN(cols) {
			t.Fatalf("%s input has no missing values to send", fx.model)
		}
		rec := recordOf(t, m.Features(), cols)
		want := embeddedScores(t, m, rec)
		rc := &recorder{}
		url := throughToxiproxy(t, m, rc.wrap)
		n := 0
		for _, ct := range types {
			for _, accept := range types {
				shape := shapes[n%len(shapes)]
				n++
				what := fmt.Sprintf("%s %s -> %s (%s)", fx.model, ct, accept, shape)
				before := len(rc.seen())
				rs, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "ep", Features: m.Features(), Outputs: fx.outputs,
					ContentType: ct, Accept: accept, Instance: shape, MaxRowsPerRequest: 40, Timeout: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				var res Result
				if err := rs.Score(t.Context(), rec, &res); err != nil {
					t.Fatal(err)
				}
				sameScores(t, what, &res, want)
				reqs := rc.seen()[before:]
				if len(reqs) != (in.Rows+39)/40 {
					t.Errorf("%s: %d requests for %d rows of at most 40", what, len(reqs), in.Rows)
				}
				for _, q := range reqs {
					if q.contentType != ct || q.accept != accept {
						t.Fatalf("%s: request sent as %q accepting %q", what, q.contentType, q.accept)
					}
				}
			}
		}
	}
}

func hasNaN(cols [][]float64) bool {
	for _, c := range cols {
		for _, v := range c {
			if math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

// wideModel is a linear model over n features, so rows can be made as wide
// as a payload test needs.
func wideModel(t *testing.T, n int) *Model {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"streamscore_linear":1,"link":"logistic","intercept":-0.5,"features":[`)
	for j := range n {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"f%d","weight":%g}`, j, 1/float64(j+3))
	}
	b.WriteString("]}")
	return mustParse(t, []byte(b.String()))
}

// Wide rows at full float64 precision, many more than one request can
// carry: every request body is within the 6 MB limit (the model server
// answers 413 past it) in every content type, no row is lost, and the
// requests are full (the split is by encoded size, not a guessed row count).
func TestRemotePayloadBound(t *testing.T) {
	const features, rows = 400, 1500
	m := wideModel(t, features)
	r := rand.New(rand.NewPCG(17, 1))
	cols := make([][]float64, features)
	for j := range cols {
		cols[j] = make([]float64, rows)
		for i := range cols[j] {
			cols[j][i] = r.NormFloat64() * 1e-7 // long shortest forms: -1.2345678901234567e-08
		}
	}
	cols[3][7] = math.NaN()
	rec := recordOf(t, m.Features(), cols)
	want := embeddedScores(t, m, rec)
	rc := &recorder{}
	url := throughToxiproxy(t, m, rc.wrap)
	for _, ct := range []string{remotespec.ContentCSV, remotespec.ContentJSON, remotespec.ContentJSONLines} {
		before := len(rc.seen())
		rs, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "ep", Features: m.Features(),
			ContentType: ct, Instance: remotespec.InstanceFeatures, MaxRowsPerRequest: 1 << 20, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var res Result
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
		sameScores(t, ct, &res, want)
		reqs := rc.seen()[before:]
		total := 0
		for _, q := range reqs {
			if q.bytes > MaxPayloadBytes {
				t.Fatalf("%s: a request of %d bytes, over the %d limit", ct, q.bytes, MaxPayloadBytes)
			}
			total += q.bytes
		}
		// Every request but one (the batch's last, whenever it arrived) is
		// full: the next row would not have fit.
		rowBytes := total / rows
		short := 0
		for _, q := range reqs {
			if q.bytes < MaxPayloadBytes-2*rowBytes {
				short++
			}
		}
		if short > 1 {
			t.Errorf("%s: %d of %d requests are short of the limit by more than two rows (~%d bytes each)", ct, short, len(reqs), rowBytes)
		}
		if len(reqs) < 2 {
			t.Fatalf("%s: %d bytes in %d request(s): the batch was meant to need several", ct, total, len(reqs))
		}
		t.Logf("%s: %d rows of %d features in %d requests (%d bytes/row)", ct, rows, features, len(reqs), rowBytes)
	}
}

// recordWithEntity is recordOf with a string entity column first.
func recordWithEntity(t *testing.T, entity string, ids []string, names []string, cols [][]float64) arrow.RecordBatch {
	t.Helper()
	feat := recordOf(t, names, cols)
	bld := array.NewStringBuilder(memory.NewGoAllocator())
	defer bld.Release()
	for _, id := range ids {
		if id == "" {
			bld.AppendNull()
		} else {
			bld.Append(id)
		}
	}
	ent := bld.NewArray()
	defer ent.Release()
	fields := append([]arrow.Field{{Name: entity, Type: arrow.BinaryTypes.String, Nullable: true}}, feat.Schema().Fields()...)
	arrs := append([]arrow.Array{ent}, feat.Columns()...)
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, feat.NumRows())
	t.Cleanup(rec.Release)
	return rec
}

// TargetModel, InferenceComponentName and TargetContainerHostname reach
// the endpoint on every request, and the version names them.
func TestRemotePassesTargets(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(m.Features())
	rec := recordOf(t, m.Features(), cols)
	rc := &recorder{}
	url := throughToxiproxy(t, m, rc.wrap)
	rs, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "ep", Features: m.Features(), MaxRowsPerRequest: 50,
		TargetModel: "model-a.tar.gz", InferenceComponent: "ic-blue-1", TargetContainerHostname: "xgb", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	sameScores(t, "fixed target", &res, embeddedScores(t, m, rec))
	for _, q := range rc.seen() {
		if q.targetModel != "model-a.tar.gz" || q.component != "ic-blue-1" || q.hostname != "xgb" {
			t.Fatalf("request carried target model %q, component %q, hostname %q", q.targetModel, q.component, q.hostname)
		}
	}
	if res.Version != "sagemaker:ep;component=ic-blue-1;target_model=model-a.tar.gz" {
		t.Errorf("version %q", res.Version)
	}
}

// targetFaults is middleware standing in for a multi-model endpoint whose
// model "bad" fails: requests for it get a 503 while failing is set; the
// others reach the model server. It counts requests per target model.
type targetFaults struct {
	mu      sync.Mutex
	failing map[string]bool
	calls   map[string]int
}

func (tf *targetFaults) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tm := r.Header.Get("X-Amzn-SageMaker-Target-Model")
		tf.mu.Lock()
		tf.calls[tm]++
		fail := tf.failing[tm]
		tf.mu.Unlock()
		if fail {
			w.Header().Set("X-Amzn-ErrorType", "ServiceUnavailable")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"message":"model failed to load"}`))
			return
		}
		h.ServeHTTP(w, withoutTarget(r)) // a multi-model endpoint's routing
	})
}

func (tf *targetFaults) set(model string, fail bool) {
	tf.mu.Lock()
	tf.failing[model] = fail
	tf.mu.Unlock()
}

func (tf *targetFaults) count(model string) int {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	return tf.calls[model]
}

// One model of a multi-model endpoint failing opens its own breaker only:
// its rows fall back while the other models' rows go on being scored by
// the endpoint; while it is open nothing is sent for it; once it heals it
// closes through half-open. The model is picked per row from a segment of
// the entity (press-0001 -> model-press.tar.gz by the template, lathe by
// the map), and unroutable rows fall back with an error naming the value.
func TestRemotePerTargetBreaker(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(m.Features())
	kinds := []string{"press", "lathe", "mill"}
	ids := make([]string, in.Rows)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", kinds[i%3], i)
	}
	rec := recordWithEntity(t, "machine_id", ids, m.Features(), cols)
	want := embeddedScores(t, m, rec)
	tf := &targetFaults{failing: map[string]bool{}, calls: map[string]int{}}
	url := throughToxiproxy(t, m, tf.wrap)
	fb, err := NewEmbedded(m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bl := &breakerLog{}
	met, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "ep", Features: m.Features(), MaxRowsPerRequest: 20,
		TargetModelFrom: "machine_id", TargetModelDelimiter: "-", TargetModelSegment: 0,
		TargetModels: map[string]string{"lathe": "lathe-v2.tar.gz"}, TargetModelTemplate: "model-{machine_id}.tar.gz",
		Fallback: fb, OnBreakerChange: bl.add, MaxAttempts: 1, Concurrency: 2, Timeout: 30 * time.Second,
		Breaker: BreakerConfig{ConsecutiveFailures: 2, OpenFor: 300 * time.Millisecond}, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	sameScores(t, "healthy", &res, want)
	for _, tm := range []string{"model-press.tar.gz", "lathe-v2.tar.gz", "model-mill.tar.gz"} {
		if tf.count(tm) == 0 {
			t.Fatalf("no request for target model %s (calls %v)", tm, tf.calls)
		}
	}

	tf.set("model-press.tar.gz", true)
	isPress := func(i int) bool { return i%3 == 0 }
	for rs.State() != BreakerOpen {
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
		for i := range res.Len() {
			wantSrc := SourcePrimary
			if isPress(i) {
				wantSrc = SourceFallback
			}
			if res.Source[i] != wantSrc || res.Scores[0][i] != want.Scores[0][i] {
				t.Fatalf("row %d (%s): %v %v, want %v %v", i, ids[i], res.Source[i], res.Scores[0][i], wantSrc, want.Scores[0][i])
			}
		}
		if res.Err == nil || !strings.Contains(res.Err.Error(), "ep@model-press.tar.gz") {
			t.Fatalf("err %v does not name the failing target", res.Err)
		}
	}
	for tm, st := range map[string]BreakerState{"model-press.tar.gz": BreakerOpen, "lathe-v2.tar.gz": BreakerClosed, "model-mill.tar.gz": BreakerClosed} {
		if got, ok := rs.TargetState(tm); !ok || got != st {
			t.Fatalf("target %s: breaker %v (kept %v), want %v", tm, got, ok, st)
		}
	}
	sent := tf.count("model-press.tar.gz")
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	if tf.count("model-press.tar.gz") != sent || res.Count(SourcePrimary) != in.Rows-(in.Rows+2)/3 {
		t.Fatalf("open breaker: %d requests sent for the open target, %d rows primary", tf.count("model-press.tar.gz")-sent, res.Count(SourcePrimary))
	}
	// The request metrics tell the failing target from the healthy ones.
	reqs := func(label, outcome string) float64 {
		return testutil.ToFloat64(met.requests.WithLabelValues(label, outcome))
	}
	if reqs("ep@model-press.tar.gz", "server_error") == 0 || reqs("ep@model-press.tar.gz", "rejected") == 0 ||
		reqs("ep@lathe-v2.tar.gz", "ok") == 0 || reqs("ep@lathe-v2.tar.gz", "server_error") != 0 || reqs("ep@lathe-v2.tar.gz", "rejected") != 0 {
		t.Errorf("request metrics: press %v errors, %v rejected; lathe %v ok, %v errors, %v rejected",
			reqs("ep@model-press.tar.gz", "server_error"), reqs("ep@model-press.tar.gz", "rejected"),
			reqs("ep@lathe-v2.tar.gz", "ok"), reqs("ep@lathe-v2.tar.gz", "server_error"), reqs("ep@lathe-v2.tar.gz", "rejected"))
	}
	if n := testutil.CollectAndCount(met.latency); n != 3 {
		t.Errorf("%d latency series, want one per target model (3)", n)
	}

	tf.set("model-press.tar.gz", false)
	waitFor(t, "the press breaker to close", func() bool {
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
		return res.Count(SourcePrimary) == in.Rows
	})
	bl.mu.Lock()
	for _, e := range bl.events {
		if e.Endpoint != "ep@model-press.tar.gz" || e.Target != "model-press.tar.gz" {
			t.Errorf("breaker event for %q (target %q): only the failing model's breaker should change", e.Endpoint, e.Target)
		}
	}
	bl.mu.Unlock()
	if got := bl.states(); !strings.HasPrefix(got, "open,half-open") || !strings.HasSuffix(got, "closed") {
		t.Fatalf("press breaker transitions %s", got)
	}

	// A value the map lacks with no template, and a null, fall back alone.
	rs2, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "ep", Features: m.Features(),
		TargetModelFrom: "machine_id", TargetModelDelimiter: "-", TargetModels: map[string]string{"press": "p.tar.gz", "lathe": "l.tar.gz"},
		Fallback: fb, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ids2 := append([]string(nil), ids...)
	ids2[1] = ""
	rec2 := recordWithEntity(t, "machine_id", ids2, m.Features(), cols)
	if err := rs2.Score(t.Context(), rec2, &res); err != nil {
		t.Fatal(err)
	}
	for i := range res.Len() {
		wantSrc := SourcePrimary
		if i%3 == 2 || i == 1 {
			wantSrc = SourceFallback
		}
		if res.Source[i] != wantSrc || res.Scores[0][i] != want.Scores[0][i] {
			t.Fatalf("unroutable rows: row %d (%q): %v, want %v", i, ids2[i], res.Source[i], wantSrc)
		}
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "machine_id") {
		t.Fatalf("unroutable rows: err %v", res.Err)
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A bounded number of breakers: past MaxTargets the least recently used
// closed one is evicted, never an open one while a closed one remains.
func TestRemoteTargetEviction(t *testing.T) {
	bl := &breakerLog{}
	met, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRemote(nil, RemoteConfig{Endpoint: "ep", Features: []string{"a"}, TargetModelFrom: "k",
		TargetModelTemplate: "m-{k}", MaxTargets: 2, OnBreakerChange: bl.add, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	a := rs.get("m-a", 1)
	for range 5 {
		a.cb.Execute(func() ([]byte, error) { return nil, errors.New("model failed") })
	}
	if a.cb.State() != BreakerOpen {
		t.Fatalf("breaker %v after 5 failures", a.cb.State())
	}
	rs.get("m-b", 2)
	rs.get("m-c", 3) // evicts m-b (closed), though m-a is older
	if _, ok := rs.TargetState("m-b"); ok {
		t.Error("closed m-b kept, open m-a should have been kept instead")
	}
	if st, ok := rs.TargetState("m-a"); !ok || st != BreakerOpen {
		t.Errorf("m-a: %v %v", st, ok)
	}
	rs.get("m-d", 4) // m-c is closed: it goes
	if _, ok := rs.TargetState("m-c"); ok || len(rs.targets.m) != 2 {
		t.Errorf("%d breakers kept, m-c kept %v", len(rs.targets.m), ok)
	}
	if got := bl.snapshot(); len(got) != 1 || got[0].Target != "m-a" || got[0].To != BreakerOpen {
		t.Fatalf("breaker events %+v, want m-a opening only: closed breakers go without one", got)
	}
	// Every breaker open: the least recently used open one goes, and its
	// open state is declared over, or its alert would stay open for ever.
	d := rs.get("m-d", 5)
	for range 5 {
		d.cb.Execute(func() ([]byte, error) { return nil, errors.New("model failed") })
	}
	met.request(a.label, "ok") // as a call to m-a would have
	met.observe(a.label, 0.01)
	rs.get("m-e", 6) // evicts m-a (open, used at 1)
	// Its series go with it: a stream of model names grows no metrics.
	for name, c := range map[string]prometheus.Collector{"breaker_state": met.breakerState, "breaker_transitions_total": met.breakerTrans,
		"endpoint_requests_total": met.requests, "endpoint_request_seconds": met.latency} {
		if n := testutil.CollectAndCount(c); n > 3 { // m-d's and m-e's state, m-d's two transitions
			t.Errorf("%s: %d series after evictions, more than the kept targets'", name, n)
		}
	}
	if n := testutil.CollectAndCount(met.requests) + testutil.CollectAndCount(met.latency); n != 0 {
		t.Errorf("%d request series kept for the evicted m-a", n)
	}
	got := bl.snapshot()
	if len(got) != 3 {
		t.Fatalf("breaker events %+v, want m-a and m-d opening, then m-a evicted", got)
	}
	if ev := got[2]; ev.Target != "m-a" || ev.Endpoint != "ep@m-a" || !ev.Evicted || ev.From != BreakerOpen || ev.To != BreakerClosed {
		t.Errorf("eviction event %+v, want m-a evicted from open to closed", ev)
	}
	if _, ok := rs.TargetState("m-a"); ok {
		t.Error("m-a kept: the least recently used open breaker should have gone")
	}
}
