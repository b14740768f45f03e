package scorer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The multi-model tests use three models of the same eight features that
// score the fixture rows differently, so a request routed to the wrong
// model shows: an XGBoost JSON file, SageMaker's model.tar.gz in a
// directory (as SageMaker hands a multi-model container its models), and a
// three-class model.
const (
	mmeFileA  = "testdata/fidelity/reg_squarederror.json"
	mmeTarB   = "testdata/fidelity/model.tar.gz"
	mmeFileC  = "testdata/fidelity/multi_softprob.json"
	mmeInputs = "testdata/fidelity/binary_logistic.input.csv"
)

// mmeDirB returns a directory holding model.tar.gz, like the
// /opt/ml/models/<hash>/model directories SageMaker loads from.
func mmeDirB(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(mmeTarB)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.tar.gz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startMultiModel(t *testing.T, o MultiModelOptions) (string, *multiModel) {
	t.Helper()
	if o.Serve.Logger == nil {
		o.Serve.Logger = slog.New(slog.DiscardHandler)
	}
	h := NewMultiModelHandler(o)
	return startServeHandler(t, h), h.(*multiModel)
}

// call sends one request and returns its status, body and headers.
func mmeCall(t *testing.T, method, url, ct string, body []byte, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func mmeLoad(t *testing.T, url, name, modelURL string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"model_name": name, "url": modelURL})
	code, body, _ := mmeCall(t, "POST", url+"/models", "application/json", b)
	return code, body
}

// mmsError decodes the multi-model server's error body.
func mmeError(t *testing.T, body string) (code int, typ string) {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Message == "" {
		t.Fatalf("not an error of the multi-model server's shape: %q (%v)", body, err)
	}
	return e.Code, e.Type
}

type mmeListing struct {
	Models []struct {
		ModelName string `json:"modelName"`
		ModelURL  string `json:"modelUrl"`
	} `json:"models"`
	NextPageToken *string `json:"nextPageToken"`
}

func mmeList(t *testing.T, url string) mmeListing {
	t.Helper()
	code, body, _ := mmeCall(t, "GET", url, "", nil)
	var l mmeListing
	if code != 200 || json.Unmarshal([]byte(body), &l) != nil || l.Models == nil {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return l
}

func mmeNames(l mmeListing) string {
	var names []string
	for _, m := range l.Models {
		names = append(names, m.ModelName)
	}
	return strings.Join(names, ",")
}

// mmeBodies returns the fixture rows as CSV, JSON and JSON lines request
// bodies, keyed by content type.
func mmeBodies(t *testing.T, features []string) map[string][]byte {
	t.Helper()
	in := readTable(t, mmeInputs)
	cols, err := in.Select(features)
	if err != nil {
		t.Fatal(err)
	}
	return requestBodies(cols, in.Rows)
}

// The contract as SageMaker drives it: load two models, list, describe,
// invoke each in every content type with exactly the single-model server's
// answers, 409 on a second load, 404 for what is not loaded or does not
// exist, 400 for what is not a model, and unload.
func TestMultiModelContract(t *testing.T) {
	dirB := mmeDirB(t)
	reg := prometheus.NewRegistry()
	met, err := NewMultiModelMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	url, _ := startMultiModel(t, MultiModelOptions{MemoryBudget: 64 << 20, Metrics: met})

	if code, _, _ := mmeCall(t, "GET", url+"/ping", "", nil); code != 200 {
		t.Fatalf("ping: %d", code)
	}
	if l := mmeList(t, url+"/models"); len(l.Models) != 0 || l.NextPageToken != nil {
		t.Fatalf("empty server lists %+v", l)
	}
	if code, body := mmeLoad(t, url, "a", mmeFileA); code != 200 {
		t.Fatalf("load a: %d %s", code, body)
	}
	if code, body := mmeLoad(t, url, "b", dirB); code != 200 {
		t.Fatalf("load b: %d %s", code, body)
	}
	code, body := mmeLoad(t, url, "a", mmeFileC)
	if c, typ := mmeError(t, body); code != 409 || c != 409 || typ != "ConflictStatusException" {
		t.Fatalf("second load of a: %d %s", code, body)
	}

	l := mmeList(t, url+"/models")
	if mmeNames(l) != "a,b" || l.Models[0].ModelURL != mmeFileA || l.Models[1].ModelURL != dirB || l.NextPageToken != nil {
		t.Fatalf("list: %+v", l)
	}
	l = mmeList(t, url+"/models?limit=1")
	if mmeNames(l) != "a" || l.NextPageToken == nil {
		t.Fatalf("first page of 1: %+v", l)
	}
	l = mmeList(t, url+"/models?limit=1&next_page_token="+*l.NextPageToken)
	if mmeNames(l) != "b" || l.NextPageToken != nil {
		t.Fatalf("second page of 1: %+v", l)
	}

	mA, mB := loadFixtureModel(t, filepath.Base(mmeFileA)), loadFixtureModel(t, filepath.Base(mmeTarB))
	code, body, _ = mmeCall(t, "GET", url+"/models/a", "", nil)
	var d modelDescription
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("describe a: %d %s", code, body)
	}
	if d.ModelName != "a" || d.ModelURL != mmeFileA || d.ModelVersion != mA.Version() || d.Objective != "reg:squarederror" ||
		len(d.Features) != 8 || d.Outputs != 1 || d.MemoryBytes != mA.HeapBytes() || d.MemoryBytes <= 0 || d.LoadedAt.IsZero() {
		t.Fatalf("describe a: %+v", d)
	}
	code, body, _ = mmeCall(t, "GET", url+"/models/zzz", "", nil)
	if c, typ := mmeError(t, body); code != 404 || c != 404 || typ != "ModelNotFoundException" {
		t.Fatalf("describe zzz: %d %s", code, body)
	}

	// Every content type, both ways, answered byte for byte as each model's
	// own single-model server answers.
	bodies := mmeBodies(t, mA.Features())
	answers := map[string]string{}
	for name, m := range map[string]*Model{"a": mA, "b": mB} {
		single := startServe(t, m, nil)
		for ct, b := range bodies {
			for _, accept := range []string{"", "text/csv", "application/json", "application/jsonlines"} {
				wc, wb, wh := mmeCall(t, "POST", single+"/invocations", ct, b, "Accept", accept)
				gc, gb, gh := mmeCall(t, "POST", url+"/models/"+name+"/invoke", ct, b, "Accept", accept)
				if wc != 200 || gc != wc || gb != wb || gh.Get("Content-Type") != wh.Get("Content-Type") ||
					gh.Get("X-Amzn-SageMaker-Custom-Attributes") != wh.Get("X-Amzn-SageMaker-Custom-Attributes") {
					t.Fatalf("model %s, %s accept %q: multi-model %d %.80q, single-model %d %.80q", name, ct, accept, gc, gb, wc, wb)
				}
				answers[name+ct+accept] = gb
			}
		}
		// A bad row is refused as the single-model server refuses it.
		bad := []byte("1,2,3,4,5,6,7,8\n1,2,x,4,5,6,7,8\n")
		wc, wb, _ := mmeCall(t, "POST", single+"/invocations", "text/csv", bad)
		gc, gb, _ := mmeCall(t, "POST", url+"/models/"+name+"/invoke", "text/csv", bad)
		if wc != 400 || gc != wc || gb != wb {
			t.Fatalf("bad row, model %s: multi-model %d %q, single %d %q", name, gc, gb, wc, wb)
		}
	}
	if answers["atext/csv"] == answers["btext/csv"] {
		t.Fatal("the two models answer alike: the test could not tell them apart")
	}
	// POST /invocations, which SageMaker does not send a multi-model
	// container, names its model as the multi-model server takes it.
	if code, body, _ := mmeCall(t, "POST", url+"/invocations?model_name=b", "text/csv", bodies["text/csv"]); code != 200 || body != answers["btext/csv"] {
		t.Fatalf("/invocations?model_name=b: %d %.80q", code, body)
	}
	code, body, _ = mmeCall(t, "POST", url+"/invocations", "text/csv", bodies["text/csv"])
	if c, typ := mmeError(t, body); code != 400 || c != 400 || typ != "BadRequestException" {
		t.Fatalf("/invocations without a model: %d %s", code, body)
	}

	for _, tc := range []struct {
		what, method, path, ct, body string
		code                         int
		typ                          string
	}{
		{"invoke unknown", "POST", "/models/zzz/invoke", "text/csv", "1,2,3,4,5,6,7,8\n", 404, "ModelNotFoundException"},
		{"unload unknown", "DELETE", "/models/zzz", "", "", 404, "ModelNotFoundException"},
		{"url that does not exist", "POST", "/models", "application/json", `{"model_name":"c","url":"/nonexistent/model"}`, 404, "ModelNotFoundException"},
		{"url that is not a model", "POST", "/models", "application/json", `{"model_name":"c","url":"` + mmeInputs + `"}`, 400, "BadRequestException"},
		{"no url", "POST", "/models", "application/json", `{"model_name":"c"}`, 400, "BadRequestException"},
		{"no name", "POST", "/models", "application/json", `{"url":"` + mmeFileC + `"}`, 400, "BadRequestException"},
		{"not JSON", "POST", "/models", "application/json", `{"model_name":`, 400, "BadRequestException"},
	} {
		code, body, _ := mmeCall(t, tc.method, url+tc.path, tc.ct, []byte(tc.body))
		if c, typ := mmeError(t, body); code != tc.code || c != tc.code || typ != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.what, code, body, tc.code, tc.typ)
		}
	}

	if code, body, _ := mmeCall(t, "DELETE", url+"/models/a", "", nil); code != 200 {
		t.Fatalf("unload a: %d %s", code, body)
	}
	if code, _, _ := mmeCall(t, "POST", url+"/models/a/invoke", "text/csv", bodies["text/csv"]); code != 404 {
		t.Fatalf("invoke after unload: %d", code)
	}
	if code, _, _ := mmeCall(t, "GET", url+"/models/a", "", nil); code != 404 {
		t.Fatalf("describe after unload: %d", code)
	}
	if l := mmeList(t, url+"/models"); mmeNames(l) != "b" {
		t.Fatalf("list after unload: %+v", l)
	}
	// Unloaded, the name can be loaded again (SageMaker reloads evicted models).
	if code, body := mmeLoad(t, url, "a", mmeFileA); code != 200 {
		t.Fatalf("reload a: %d %s", code, body)
	}
	if code, body, _ := mmeCall(t, "POST", url+"/models/a/invoke", "text/csv", bodies["text/csv"]); code != 200 || body != answers["atext/csv"] {
		t.Fatalf("invoke after reload: %d %.80q", code, body)
	}

	for _, c := range []struct {
		result string
		want   float64
	}{{loadOK, 3}, {loadConflict, 1}, {loadNotFound, 1}, {loadInvalid, 4}} {
		if got := testutil.ToFloat64(met.loads.WithLabelValues(c.result)); got != c.want {
			t.Errorf("loads{result=%s} = %v, want %v", c.result, got, c.want)
		}
	}
	if got := testutil.ToFloat64(met.unloads.WithLabelValues(unloadRequested)); got != 1 {
		t.Errorf("unloads{reason=request} = %v, want 1", got)
	}
	// The loaded models' own count: a model's description (its source)
	// is part of its size.
	var used int64
	for _, name := range []string{"a", "b"} {
		_, body, _ := mmeCall(t, "GET", url+"/models/"+name, "", nil)
		var d modelDescription
		if err := json.Unmarshal([]byte(body), &d); err != nil || d.MemoryBytes <= 0 {
			t.Fatalf("describe %s: %s", name, body)
		}
		used += d.MemoryBytes
	}
	if got, want := testutil.ToFloat64(met.bytes), float64(used); got != want || testutil.ToFloat64(met.loaded) != 2 {
		t.Errorf("memory gauge %v, want %v; loaded %v", got, want, testutil.ToFloat64(met.loaded))
	}
}

// With room for two of three models, loading the third unloads the least
// recently used one, not the first loaded.
func TestMultiModelEvictsLeastRecentlyUsed(t *testing.T) {
	dirB := mmeDirB(t)
	sA := loadFixtureModel(t, filepath.Base(mmeFileA)).HeapBytes()
	sB := loadFixtureModel(t, filepath.Base(mmeTarB)).HeapBytes()
	sC := loadFixtureModel(t, filepath.Base(mmeFileC)).HeapBytes()
	reg := prometheus.NewRegistry()
	met, err := NewMultiModelMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Any two fit (each is at least a byte), all three do not.
	url, _ := startMultiModel(t, MultiModelOptions{MemoryBudget: sA + sB + sC - 1, Metrics: met})
	for _, l := range [][2]string{{"a", mmeFileA}, {"b", dirB}} {
		if code, body := mmeLoad(t, url, l[0], l[1]); code != 200 {
			t.Fatalf("load %s: %d %s", l[0], code, body)
		}
	}
	csv := mmeBodies(t, loadFixtureModel(t, filepath.Base(mmeFileA)).Features())["text/csv"]
	if code, _, _ := mmeCall(t, "POST", url+"/models/a/invoke", "text/csv", csv); code != 200 {
		t.Fatalf("invoke a: %d", code)
	}
	if code, body := mmeLoad(t, url, "c", mmeFileC); code != 200 {
		t.Fatalf("load c: %d %s", code, body)
	}
	if l := mmeList(t, url+"/models"); mmeNames(l) != "a,c" {
		t.Fatalf("after loading c: %s loaded, want a,c (b was least recently used)", mmeNames(l))
	}
	if code, _, _ := mmeCall(t, "POST", url+"/models/b/invoke", "text/csv", csv); code != 404 {
		t.Fatalf("invoke evicted b: %d", code)
	}
	if got := testutil.ToFloat64(met.unloads.WithLabelValues(unloadEvicted)); got != 1 {
		t.Errorf("unloads{reason=evicted} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(met.bytes); got != float64(sA+sC) {
		t.Errorf("memory gauge %v, want %d", got, sA+sC)
	}
}

// A model larger than the whole budget is answered 507, whether the
// compile stops at the lowered heap limit or the finished model is too
// large; and a load that needs the room of a model serving a request is
// answered 507 without unloading anything, then succeeds once it is idle.
func TestMultiModelInsufficientMemory(t *testing.T) {
	mA := loadFixtureModel(t, filepath.Base(mmeFileA))
	sA := mA.HeapBytes()
	for _, tc := range []struct {
		budget int64
		says   string
	}{
		{1024, "max_heap_bytes"},
		{sA - 1, "more than the whole memory budget"},
	} {
		reg := prometheus.NewRegistry()
		met, _ := NewMultiModelMetrics(reg)
		url, _ := startMultiModel(t, MultiModelOptions{MemoryBudget: tc.budget, Metrics: met})
		code, body := mmeLoad(t, url, "a", mmeFileA)
		if c, typ := mmeError(t, body); code != 507 || c != 507 || typ != "InsufficientMemoryException" || !strings.Contains(body, tc.says) {
			t.Errorf("budget %d: %d %s, want 507 saying %q", tc.budget, code, body, tc.says)
		}
		if l := mmeList(t, url+"/models"); len(l.Models) != 0 {
			t.Errorf("budget %d: %s loaded", tc.budget, mmeNames(l))
		}
		if got := testutil.ToFloat64(met.loads.WithLabelValues(loadInsufficientMemory)); got != 1 {
			t.Errorf("budget %d: loads{result=insufficient_memory} = %v", tc.budget, got)
		}
	}

	dirB := mmeDirB(t)
	sB := loadFixtureModel(t, filepath.Base(mmeTarB)).HeapBytes()
	url, mm := startMultiModel(t, MultiModelOptions{MemoryBudget: max(sA, sB) + min(sA, sB)/2})
	if code, body := mmeLoad(t, url, "a", mmeFileA); code != 200 {
		t.Fatalf("load a: %d %s", code, body)
	}
	held := mm.store.acquire("a") // a request in flight on a
	code, body := mmeLoad(t, url, "b", dirB)
	if code != 507 || !strings.Contains(body, "idle models hold only 0") {
		t.Fatalf("load b while a is busy: %d %s", code, body)
	}
	if l := mmeList(t, url+"/models"); mmeNames(l) != "a" {
		t.Fatalf("busy a was unloaded: %s", mmeNames(l))
	}
	mm.store.release(held)
	if code, body := mmeLoad(t, url, "b", dirB); code != 200 {
		t.Fatalf("load b once a is idle: %d %s", code, body)
	}
	if l := mmeList(t, url+"/models"); mmeNames(l) != "b" {
		t.Fatalf("after loading b: %s", mmeNames(l))
	}
}

// The AWS SDK's InvokeEndpoint with TargetModel reaches the named model
// through the runtime API path; an unknown or missing target is the
// ValidationError (400) SageMaker answers.
func TestMultiModelSDKTargetModel(t *testing.T) {
	dirB := mmeDirB(t)
	url, _ := startMultiModel(t, MultiModelOptions{MemoryBudget: 64 << 20})
	for _, l := range [][2]string{{"a", mmeFileA}, {"b/model.tar.gz", dirB}} {
		if code, body := mmeLoad(t, url, l[0], l[1]); code != 200 {
			t.Fatalf("load %s: %d %s", l[0], code, body)
		}
	}
	c := sdkClient(url)
	for name, file := range map[string]string{"a": mmeFileA, "b/model.tar.gz": mmeTarB} {
		m := loadFixtureModel(t, filepath.Base(file))
		single := startServe(t, m, nil)
		for ct, body := range mmeBodies(t, m.Features()) {
			_, want, _ := mmeCall(t, "POST", single+"/invocations", ct, body)
			out, err := c.InvokeEndpoint(t.Context(), &sagemakerruntime.InvokeEndpointInput{
				EndpointName: aws.String("mme"), TargetModel: aws.String(name), ContentType: aws.String(ct), Body: body,
			})
			if err != nil {
				t.Fatalf("target %s, %s: %v", name, ct, err)
			}
			if string(out.Body) != want || aws.ToString(out.CustomAttributes) != "model_version="+m.Version() {
				t.Fatalf("target %s, %s: %.80q (%s), want %.80q", name, ct, out.Body, aws.ToString(out.CustomAttributes), want)
			}
		}
	}
	// A name that is a relative path, as TargetModel is, is managed
	// through its escaped form.
	if code, body, _ := mmeCall(t, "GET", url+"/models/"+neturl.PathEscape("b/model.tar.gz"), "", nil); code != 200 || !strings.Contains(body, `"modelName":"b/model.tar.gz"`) {
		t.Fatalf("describe b/model.tar.gz: %d %s", code, body)
	}
	for _, target := range []*string{aws.String("nope.tar.gz"), nil} {
		_, err := c.InvokeEndpoint(t.Context(), &sagemakerruntime.InvokeEndpointInput{
			EndpointName: aws.String("mme"), TargetModel: target, ContentType: aws.String("text/csv"), Body: []byte("1,2,3,4,5,6,7,8\n"),
		})
		var ae smithy.APIError
		var re *awshttp.ResponseError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationError" || !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
			t.Fatalf("target %v: %v, want a 400 ValidationError", aws.ToString(target), err)
		}
	}
}

// A single-model server refuses InvokeEndpoint's TargetModel as SageMaker
// does for an endpoint that is not multi-model (a 400 ValidationError that
// names the target), rather than scoring it with its one model: a
// configuration that passes here must not fail on AWS. Without it, the
// same call scores.
func TestSingleModelRefusesATargetModel(t *testing.T) {
	m := loadFixtureModel(t, filepath.Base(mmeFileA))
	c := sdkClient(startServe(t, m, nil))
	body := []byte(strings.Repeat("1,", len(m.Features())-1) + "1\n")
	_, err := c.InvokeEndpoint(t.Context(), &sagemakerruntime.InvokeEndpointInput{
		EndpointName: aws.String("ep"), TargetModel: aws.String("a.tar.gz"), ContentType: aws.String("text/csv"), Body: body,
	})
	var ae smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationError" || !errors.As(err, &re) || re.HTTPStatusCode() != 400 ||
		!strings.Contains(ae.ErrorMessage(), `"a.tar.gz"`) {
		t.Fatalf("TargetModel on a single-model server: %v, want a 400 ValidationError naming it", err)
	}
	if _, err := c.InvokeEndpoint(t.Context(), &sagemakerruntime.InvokeEndpointInput{
		EndpointName: aws.String("ep"), ContentType: aws.String("text/csv"), Body: body,
	}); err != nil {
		t.Fatalf("without TargetModel: %v", err)
	}
}

// waitFor polls cond until it holds or 30 s pass.
func mmeWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not synchronisation
	}
}

// A model unloaded while a request is scoring with it lets the request
// finish with the right answer, refuses new ones at once, and keeps its
// memory counted until the request is done.
func TestMultiModelUnloadWaitsForRequestInFlight(t *testing.T) {
	mA := loadFixtureModel(t, filepath.Base(mmeFileA))
	url, mm := startMultiModel(t, MultiModelOptions{MemoryBudget: 64 << 20})
	if code, body := mmeLoad(t, url, "a", mmeFileA); code != 200 {
		t.Fatalf("load a: %d %s", code, body)
	}
	csv := mmeBodies(t, mA.Features())["text/csv"]
	_, want, _ := mmeCall(t, "POST", startServe(t, mA, nil)+"/invocations", "text/csv", csv)

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", url+"/models/a/invoke", pr)
	req.Header.Set("Content-Type", "text/csv")
	type answer struct {
		code int
		body string
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b), err}
	}()
	half := len(csv) / 2
	if _, err := pw.Write(csv[:half]); err != nil {
		t.Fatal(err)
	}
	mmeWaitFor(t, "the request to hold model a", func() bool {
		st, ok := mm.store.describe("a")
		return ok && st.InFlight == 1
	})
	if code, body, _ := mmeCall(t, "DELETE", url+"/models/a", "", nil); code != 200 {
		t.Fatalf("unload a: %d %s", code, body)
	}
	if code, _, _ := mmeCall(t, "POST", url+"/models/a/invoke", "text/csv", csv); code != 404 {
		t.Fatalf("new request to unloaded a: %d", code)
	}
	if used, _ := mm.store.usage(); used != mA.HeapBytes() {
		t.Fatalf("memory counted while a finishes: %d, want %d", used, mA.HeapBytes())
	}
	if _, err := pw.Write(csv[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	a := <-done
	if a.err != nil || a.code != 200 || a.body != want {
		t.Fatalf("request in flight across the unload: %d %v %.80q", a.code, a.err, a.body)
	}
	mmeWaitFor(t, "a's memory to be released", func() bool { used, _ := mm.store.usage(); return used == 0 })
}

// Under -race: requests to a model that is unloaded and reloaded over and
// over either score correctly or find it not loaded (404); none fails.
func TestMultiModelConcurrentInvokeAndUnload(t *testing.T) {
	mA := loadFixtureModel(t, filepath.Base(mmeFileA))
	url, mm := startMultiModel(t, MultiModelOptions{MemoryBudget: 64 << 20, Serve: ServeOptions{MaxConcurrent: 16}})
	if code, body := mmeLoad(t, url, "a", mmeFileA); code != 200 {
		t.Fatalf("load a: %d %s", code, body)
	}
	csv := mmeBodies(t, mA.Features())["text/csv"]
	_, want, _ := mmeCall(t, "POST", startServe(t, mA, nil)+"/invocations", "text/csv", csv)

	var stop atomic.Bool
	var scored, missed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := http.Post(url+"/models/a/invoke", "text/csv", bytes.NewReader(csv))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err == nil && resp.StatusCode == 200 && string(b) == want:
					scored.Add(1)
				case err == nil && resp.StatusCode == 404 && strings.Contains(string(b), "ModelNotFoundException"):
					missed.Add(1)
				default:
					errs <- fmt.Errorf("status %d, %v: %.120q", resp.StatusCode, err, b)
					return
				}
			}
		})
	}
	for i := range 30 {
		mmeWaitFor(t, "a request to score", func() bool { return scored.Load() > int64(i) || len(errs) > 0 })
		if code, body, _ := mmeCall(t, "DELETE", url+"/models/a", "", nil); code != 200 {
			t.Fatalf("unload %d: %d %s", i, code, body)
		}
		if code, body := mmeLoad(t, url, "a", mmeFileA); code != 200 {
			t.Fatalf("reload %d: %d %s", i, code, body)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d requests scored, %d found the model unloaded", scored.Load(), missed.Load())
	if used, _ := mm.store.usage(); used != mA.HeapBytes() {
		t.Errorf("memory counted at rest: %d, want %d", used, mA.HeapBytes())
	}
}

// The default budget is half the tightest cgroup limit, else half of RAM.
func TestDefaultMemoryBudget(t *testing.T) {
	const gib = 1 << 30
	meminfo := &fstest.MapFile{Data: []byte("MemTotal:       16777216 kB\nMemFree:  1 kB\n")}
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  int64
		from  string
	}{
		{"cgroup v2 container", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/\n")}, "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory.max": {Data: []byte("2147483648\n")},
		}, gib, "/sys/fs/cgroup/memory.max"},
		{"cgroup v2 nested, limit on the parent", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/a/b\n")}, "proc/meminfo": meminfo,
			"sys/fs/cgroup/a/b/memory.max": {Data: []byte("max\n")},
			"sys/fs/cgroup/a/memory.max":   {Data: []byte("1073741824\n")},
			"sys/fs/cgroup/memory.max":     {Data: []byte("4294967296\n")},
		}, gib / 2, "/sys/fs/cgroup/a/memory.max"},
		{"cgroup v2 without limit", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/\n")}, "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
		}, 8 * gib, "MemTotal"},
		{"cgroup v1", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("12:pids:/docker/x\n4:cpu,memory:/docker/x\n")}, "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("536870912\n")},
		}, gib / 4, "memory.limit_in_bytes"},
		{"cgroup v1 unlimited", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("4:memory:/\n")}, "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, 8 * gib, "MemTotal"},
		{"limit above RAM", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/\n")}, "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory.max": {Data: []byte("68719476736\n")},
		}, 8 * gib, "MemTotal"},
		{"nothing readable", fstest.MapFS{}, fallbackMemoryBudget, "1 GiB"},
	} {
		got, from := memoryBudgetFrom(tc.files)
		if got != tc.want || !strings.Contains(from, tc.from) {
			t.Errorf("%s: %d (%s), want %d from %s", tc.name, got, from, tc.want, tc.from)
		}
	}
	if b, from := DefaultMemoryBudget(); b <= 0 {
		t.Errorf("this machine: %d (%s)", b, from)
	}
}

// retainedBytes loads data and returns the model with the live heap the
// load added, measured around it.
func retainedBytes(t *testing.T, data []byte) (*Model, int64) {
	t.Helper()
	var before, after runtime.MemStats
	// Twice: sync.Pool's victim cache survives one collection.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := mustParse(t, data)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(data) // else the file's bytes are freed in between
	return m, int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// walkedBytes is HeapBytes's walk alone, without the family's own count.
func walkedBytes(m *Model) int64 {
	w := sizeWalker{seen: map[uintptr]bool{}, ptrs: map[reflect.Type]bool{}}
	return int64(unsafe.Sizeof(*m)) + w.extra(reflect.ValueOf(m).Elem())
}

// HeapBytes is the memory a loaded model really keeps: within 10 % of the
// live heap it adds, measured around a load, by the forest's own count and
// by the walk alike.
func TestHeapBytesCountsRetainedMemory(t *testing.T) {
	m, retained := retainedBytes(t, synthModel(300, 7, 20, 3))
	got, walked := m.HeapBytes(), walkedBytes(m)
	runtime.KeepAlive(m)
	t.Logf("HeapBytes %d, walked %d, measured %d", got, walked, retained)
	for what, n := range map[string]int64{"HeapBytes": got, "the walk": walked} {
		if float64(n) < 0.9*float64(retained) || float64(n) > 1.1*float64(retained) {
			t.Errorf("%s %d, live heap added by the load %d", what, n, retained)
		}
	}
}

// A fixture model of every family and encoding is counted: HeapBytes is
// within 10 % (and 4 KB, the measurement's noise on models this small) of
// the live heap its load adds.
func TestHeapBytesEveryFamily(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*")
	families := map[string]bool{}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || !st.Mode().IsRegular() || strings.HasSuffix(f, ".csv") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, err := ParseModel(data)
		if err != nil {
			continue // not a model this build reads
		}
		family := fmt.Sprintf("%s %s %T", first.Info().Kind, first.Info().Encoding, first.impl)
		if families[family] {
			continue
		}
		families[family] = true
		// The least of two loads: the first in the process also measures
		// what the runtime and the packages set up once.
		_, retained := retainedBytes(t, data)
		m, again := retainedBytes(t, data)
		retained = min(retained, again)
		got := m.HeapBytes()
		runtime.KeepAlive(m)
		t.Logf("%s (%s): HeapBytes %d, walked %d, measured %d", f, family, got, walkedBytes(m), retained)
		if d := float64(got - retained); d > 0.1*float64(retained)+4096 || -d > 0.1*float64(retained)+4096 {
			t.Errorf("%s: HeapBytes %d, live heap added by the load %d", f, got, retained)
		}
	}
}

// The multi-model server's cost per request over the single-model
// server's: routing, the model's reference count and LRU position, and the
// request copy for the model's handler. Compare the two side by side.
func BenchmarkMultiModelInvoke(b *testing.B) {
	m := loadFixtureModel(b, filepath.Base(mmeFileA))
	in := readTable(b, mmeInputs)
	cols, _ := in.Select(m.Features())
	var csv bytes.Buffer
	for i := range in.Rows {
		for j := range cols {
			if j > 0 {
				csv.WriteByte(',')
			}
			if v := cols[j][i]; v == v {
				csv.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		csv.WriteByte('\n')
	}
	mm := NewMultiModelHandler(MultiModelOptions{MemoryBudget: 64 << 20, Serve: ServeOptions{Logger: slog.New(slog.DiscardHandler)}})
	lb, _ := json.Marshal(loadRequest{ModelName: "a", URL: mmeFileA})
	w := httptest.NewRecorder()
	mm.ServeHTTP(w, httptest.NewRequest("POST", "/models", bytes.NewReader(lb)))
	if w.Code != 200 {
		b.Fatalf("load: %d %s", w.Code, w.Body)
	}
	for _, bc := range []struct {
		name, path string
		h          http.Handler
		hdr        string
	}{
		{"single", "/invocations", NewHandler(m, ServeOptions{}), ""},
		{"multi", "/models/a/invoke", mm, ""},
		{"multi-runtime-api", "/endpoints/e/invocations", mm, "a"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(csv.Len()))
			for b.Loop() {
				r := httptest.NewRequest("POST", bc.path, bytes.NewReader(csv.Bytes()))
				r.Header.Set("Content-Type", "text/csv")
				if bc.hdr != "" {
					r.Header.Set(TargetModelHeader, bc.hdr)
				}
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
