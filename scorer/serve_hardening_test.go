package scorer

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Non-finite or overflowing inputs are refused with 400 naming the row and
// column, in every content type, never scored into a NaN.
func TestServeRefusesNonFiniteInput(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	url := startServe(t, m, nil) + "/invocations"
	good := "1,2,3,4,5,6,1,2"
	for _, bad := range []string{"inf", "-inf", "+Inf", "nan", "NaN", "1e400", "-1.8e308", "Infinity"} {
		csv := good + "\n" + strings.Replace(good, ",3,", ","+bad+",", 1) + "\n"
		code, body, _ := post(t, url, "text/csv", "", []byte(csv))
		if code != 400 || !strings.Contains(body, "line 2, column 3 (rpm)") {
			t.Errorf("csv %q: %d %s", bad, code, body)
		}
		if strings.Contains(body, "NaN") && !strings.Contains(strings.ToLower(bad), "nan") {
			t.Errorf("csv %q: answer mentions NaN: %s", bad, body)
		}
	}
	for _, bad := range []string{"1e400", "-1e309"} {
		js := `{"instances":[[` + good + `],[1,2,` + bad + `,4,5,6,1,2]]}`
		code, body, _ := post(t, url, "application/json", "", []byte(js))
		if code != 400 || !strings.Contains(body, "row 2, column 3 (rpm)") {
			t.Errorf("json %q: %d %s", bad, code, body)
		}
		js = `[{"temp":1},{"rpm":` + bad + `}]`
		if code, body, _ = post(t, url, "application/json", "", []byte(js)); code != 400 || !strings.Contains(body, "row 2, column 3 (rpm)") {
			t.Errorf("json named %q: %d %s", bad, code, body)
		}
		jl := "[" + good + "]\n{\"features\":[1,2," + bad + ",4,5,6,1,2]}\n"
		if code, body, _ = post(t, url, "application/jsonlines", "", []byte(jl)); code != 400 || !strings.Contains(body, "line 2, column 3 (rpm)") {
			t.Errorf("jsonlines %q: %d %s", bad, code, body)
		}
	}
	// NaN and Infinity are not JSON at all.
	for _, bad := range []string{"NaN", "Infinity", `"inf"`} {
		code, body, _ := post(t, url, "application/json", "", []byte(`[[1,2,`+bad+`,4,5,6,1,2]]`))
		if code != 400 {
			t.Errorf("json literal %s: %d %s", bad, code, body)
		}
	}
}

// A model whose score overflows answers 422 naming the row, never NaN or
// Inf in a body a JSON client would choke on.
func TestServeNeverAnswersNonFinite(t *testing.T) {
	m, err := ParseModel([]byte(`{"streamscore_linear":1,"link":"exp","features":[{"name":"a","weight":1000},{"name":"b","weight":-1000}]}`))
	if err != nil {
		t.Fatal(err)
	}
	url := startServe(t, m, nil) + "/invocations"
	for _, tc := range []struct{ ct, bad, good string }{
		{"text/csv", "0,0\n1,0\n", "0,0\n"},
		{"application/json", `[[0,0],[1,0]]`, `[[0,0]]`},
		{"application/jsonlines", "[0,0]\n[1,0]\n", "[0,0]\n"},
	} {
		code, body, _ := post(t, url, tc.ct, "application/json", []byte(tc.bad))
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, "row 2") {
			t.Errorf("%s: %d %s", tc.ct, code, body)
		}
		code, body, _ = post(t, url, tc.ct, "application/json", []byte(tc.good))
		var v struct{ Predictions []struct{ Score float64 } }
		if code != 200 || json.Unmarshal([]byte(body), &v) != nil || len(v.Predictions) != 1 || v.Predictions[0].Score != 1 {
			t.Errorf("%s finite row: %d %s", tc.ct, code, body)
		}
	}
}

// Past MaxConcurrent requests in flight, the next gets 503 with
// Retry-After at once (before its body is read); once the first finishes,
// requests are served again.
func TestServeConcurrencyLimit(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	h := NewHandler(m, ServeOptions{MaxConcurrent: 1})
	url := startServeHandler(t, h) + "/invocations"

	// The first request holds the only slot: its body arrives slowly.
	pr, pw := io.Pipe()
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", url, pr)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- -1
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	pw.Write([]byte("1,2,3,4,5,6,1,2\n"))

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(url, "text/csv", strings.NewReader("1,2,3,4,5,6,1,2\n"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "limit of 1 concurrent") {
				t.Fatalf("503 without Retry-After or reason: %v %s", resp.Header, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 503 while a request holds the only slot (last %d %s)", resp.StatusCode, b)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not synchronisation
	}
	pw.Write([]byte("1,2,3,4,5,6,1,2\n"))
	pw.Close()
	if code := <-first; code != 200 {
		t.Fatalf("slow request: %d", code)
	}
	if code, body, _ := post(t, url, "text/csv", "", []byte("1,2,3,4,5,6,1,2\n")); code != 200 {
		t.Fatalf("after the slot is free: %d %s", code, body)
	}
}

// The body cap holds for chunked bodies (no Content-Length) too.
func TestServeBodyCapChunked(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	url := startServeHandler(t, NewHandler(m, ServeOptions{MaxBodyBytes: 1 << 20})) + "/invocations"
	row := []byte("1,2,3,4,5,6,1,2\n")
	req, _ := http.NewRequest("POST", url, io.MultiReader(bytes.NewReader(bytes.Repeat(row, (1<<20)/len(row)+1))))
	req.Header.Set("Content-Type", "text/csv")
	if req.ContentLength != 0 && req.ContentLength != -1 {
		t.Fatalf("test sends a known length %d", req.ContentLength)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over 1 MB: %d", resp.StatusCode)
	}
	code, _, _ := post(t, url, "text/csv", "", bytes.Repeat(row, (1<<20)/len(row)))
	if code != 200 {
		t.Fatalf("body under the cap: %d", code)
	}
}

func startServeHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	return startServe(t, nil, func(http.Handler) http.Handler { return h })
}

// bigBodies returns ~6 MB JSON and CSV request bodies for the fixture
// model's 8 features, 5 % missing.
func bigBodies(tb testing.TB, m *Model) (jsonBody, csvBody []byte) {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	nf := len(m.Features())
	var js, cs bytes.Buffer
	js.WriteString(`{"instances":[`)
	for i := 0; cs.Len() < MaxPayloadBytes-200 && js.Len() < MaxPayloadBytes-200; i++ {
		if i > 0 {
			js.WriteByte(',')
		}
		js.WriteByte('[')
		for j := range nf {
			if j > 0 {
				js.WriteByte(',')
				cs.WriteByte(',')
			}
			if r.IntN(20) == 0 {
				js.WriteString("null")
				continue
			}
			v := strconv.FormatFloat(r.NormFloat64()*100, 'g', 8, 64)
			js.WriteString(v)
			cs.WriteString(v)
		}
		js.WriteByte(']')
		cs.WriteByte('\n')
	}
	js.WriteString("]}")
	return js.Bytes(), cs.Bytes()
}

// shortBodies returns ~6 MB JSON and CSV bodies of one-digit values, the
// worst case for per-value costs (and for the response, longer than the
// request).
func shortBodies(m *Model) (jsonBody, csvBody []byte) {
	nf := len(m.Features())
	row := strings.Repeat("1,", nf-1) + "2"
	var js, cs bytes.Buffer
	js.WriteString(`{"instances":[`)
	for i := 0; js.Len() < MaxPayloadBytes-100 && cs.Len() < MaxPayloadBytes-100; i++ {
		if i > 0 {
			js.WriteByte(',')
		}
		js.WriteString("[" + row + "]")
		cs.WriteString(row + "\n")
	}
	js.WriteString("]}")
	return js.Bytes(), cs.Bytes()
}

type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardResponse) WriteHeader(int)             {}

// serveOnce runs one request through the handler in process and returns
// the bytes it allocated.
func serveOnce(tb testing.TB, h http.Handler, ct string, body []byte) uint64 {
	req, _ := http.NewRequest("POST", "/invocations", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h.ServeHTTP(&discardResponse{h: http.Header{}}, req)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A 6 MB request costs at most a small multiple of its size in allocations
// (the body, one block of rows, the response), in JSON and CSV.
func TestServeAllocationBounded(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	h := NewHandler(m, ServeOptions{})
	js, cs := bigBodies(t, m)
	sjs, scs := shortBodies(m)
	for _, tc := range []struct {
		name, ct string
		body     []byte
		max      float64
	}{
		{"json", "application/json", js, 3}, {"csv", "text/csv", cs, 3},
		// One-digit values: the response is longer than the request.
		{"json-short", "application/json", sjs, 4}, {"csv-short", "text/csv", scs, 4},
	} {
		serveOnce(t, h, tc.ct, tc.body) // warm the pools
		got := serveOnce(t, h, tc.ct, tc.body)
		ratio := float64(got) / float64(len(tc.body))
		t.Logf("%s: %d byte body, %d bytes allocated (%.2fx)", tc.name, len(tc.body), got, ratio)
		if ratio > tc.max {
			t.Errorf("%s: %d byte body allocated %d bytes (%.2fx), want at most %.0fx", tc.name, len(tc.body), got, ratio, tc.max)
		}
	}
}

// BenchmarkServeDecode reports allocated bytes per body byte for a ~6 MB
// JSON and CSV request, through the decoder before issue 11 (io.ReadAll and
// encoding/json per instance, feature columns only) and through the whole
// current handler (body, decode, predict, response), side by side.
func BenchmarkServeDecode(b *testing.B) {
	m := loadFixtureModel(b, "binary_logistic.json")
	h := NewHandler(m, ServeOptions{})
	js, cs := bigBodies(b, m)
	sjs, scs := shortBodies(m)
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{{"json", "application/json", js}, {"csv", "text/csv", cs}, {"json-short", "application/json", sjs}, {"csv-short", "text/csv", scs}} {
		b.Run(tc.name+"/before", func(b *testing.B) {
			var total uint64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				if _, _, err := legacyDecode(tc.ct, bytes.NewReader(tc.body), m.Features()); err != nil {
					b.Fatal(err)
				}
				runtime.ReadMemStats(&after)
				total += after.TotalAlloc - before.TotalAlloc
			}
			b.SetBytes(int64(len(tc.body)))
			b.ReportMetric(float64(total)/float64(b.N)/float64(len(tc.body)), "alloc/body")
		})
		b.Run(tc.name+"/after", func(b *testing.B) {
			var total uint64
			for b.Loop() {
				total += serveOnce(b, h, tc.ct, tc.body)
			}
			b.SetBytes(int64(len(tc.body)))
			b.ReportMetric(float64(total)/float64(b.N)/float64(len(tc.body)), "alloc/body")
		})
	}
}
