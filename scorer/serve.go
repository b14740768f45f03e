package scorer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// MaxPayloadBytes is SageMaker's limit on a real-time request body (6 MB).
const MaxPayloadBytes = 6 * 1024 * 1024

// ServeOptions configures the SageMaker-compatible model server.
type ServeOptions struct {
	// MaxBodyBytes caps a request body; larger ones get 413. Default and
	// maximum MaxPayloadBytes.
	MaxBodyBytes int64
	// Variant is reported as the invoked production variant; default
	// "AllTraffic".
	Variant string
	// MaxConcurrent bounds the requests being decoded and scored at once;
	// beyond it a request is answered 503 with Retry-After at once, which
	// SageMaker clients and the remote scorer retry. Each request holds its
	// body (up to MaxBodyBytes) and its response, so this bounds memory
	// too. Default 2 x GOMAXPROCS: scoring is CPU-bound, so more would only
	// queue inside the process.
	MaxConcurrent int
	Logger        *slog.Logger
}

// withDefaults fills the zero fields with their defaults.
func (o ServeOptions) withDefaults() ServeOptions {
	if o.MaxBodyBytes <= 0 || o.MaxBodyBytes > MaxPayloadBytes {
		o.MaxBodyBytes = MaxPayloadBytes
	}
	if o.Variant == "" {
		o.Variant = "AllTraffic"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 2 * runtime.GOMAXPROCS(0)
	}
	return o
}

// NewHandler returns the HTTP handler of `streamscore serve`: SageMaker's
// inference container contract (GET /ping, POST /invocations) plus the
// runtime API path POST /endpoints/{name}/invocations, so the AWS SDK's
// sagemakerruntime client can call it directly.
//
// Requests: text/csv (no header; one row per line in model feature order;
// an empty cell is missing), application/json ({"instances": [...]} or a
// bare array, each instance an array in feature order, {"features": [...]},
// or an object mapping feature names to values) or application/jsonlines
// (one instance per line). Responses, by Accept (default: the request's
// family): text/csv (one line per row, classes comma-separated),
// application/json ({"predictions": [{"score": ...}, ...]}) or
// application/jsonlines ({"score": ...} per line), as SageMaker's XGBoost
// container answers. The model version is returned in the
// X-Amzn-SageMaker-Custom-Attributes header as model_version=...
func NewHandler(src ModelSource, o ServeOptions) http.Handler {
	o = o.withDefaults()
	s := &server{src: src, o: o, sem: make(chan struct{}, o.MaxConcurrent)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /execution-parameters", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"MaxConcurrentTransforms":%d,"BatchStrategy":"MULTI_RECORD","MaxPayloadInMB":%d}`, o.MaxConcurrent, o.MaxBodyBytes>>20)
	})
	mux.HandleFunc("POST /invocations", func(w http.ResponseWriter, r *http.Request) { s.invoke(w, r, false) })
	mux.HandleFunc("POST /endpoints/{name}/invocations", func(w http.ResponseWriter, r *http.Request) {
		// SageMaker refuses a TargetModel for an endpoint that is not
		// multi-model; scoring it with the one model here instead would
		// pass a configuration locally that fails on AWS.
		if tm := r.Header.Get(TargetModelHeader); tm != "" {
			s.fail(w, true, &httpError{http.StatusBadRequest, "ValidationError",
				fmt.Sprintf("endpoint %s is not a multi-model endpoint: TargetModel %q (the %s header) is only for multi-model endpoints (streamscore serve --multi-model)",
					clipString(r.PathValue("name")), clipString(tm), TargetModelHeader)})
			return
		}
		s.invoke(w, r, true)
	})
	return mux
}

// Serve runs the model server on addr until ctx ends, then shuts down
// gracefully.
func Serve(ctx context.Context, addr string, h http.Handler, readTimeout, writeTimeout time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, readTimeout, writeTimeout)
}

// ServeListener is Serve on an existing listener.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, readTimeout, writeTimeout time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return err
		}
		return nil
	}
}

type server struct {
	src ModelSource
	o   ServeOptions
	// sem holds one token per request being served; a request that finds
	// it full is answered 503 at once, before its body is read, so memory
	// is bounded by MaxConcurrent bodies whatever the load.
	sem chan struct{}
}

// httpError is an error with the status (and, on the runtime API path, the
// SageMaker error type) to answer with.
type httpError struct {
	status int
	typ    string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func (s *server) fail(w http.ResponseWriter, runtimeAPI bool, e *httpError) {
	if runtimeAPI {
		// The SDK reads the error type from this header and the message
		// from the JSON body.
		w.Header().Set("X-Amzn-ErrorType", e.typ)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.status)
		b, _ := json.Marshal(map[string]string{"message": e.msg})
		w.Write(b)
		return
	}
	http.Error(w, e.msg, e.status)
}

func mediaType(v, def string) string {
	if v == "" {
		return def
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(v))
	}
	return mt
}

func (s *server) invoke(w http.ResponseWriter, r *http.Request, runtimeAPI bool) {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		w.Header().Set("Retry-After", "1")
		s.fail(w, runtimeAPI, &httpError{http.StatusServiceUnavailable, "ServiceUnavailable",
			fmt.Sprintf("the server is at its limit of %d concurrent requests; retry", cap(s.sem))})
		return
	}
	ct := mediaType(r.Header.Get("Content-Type"), "text/csv")
	def := "text/csv"
	switch ct {
	case "application/json":
		def = "application/json"
	case "application/jsonlines", "application/x-jsonlines":
		def = "application/jsonlines"
	}
	accept := r.Header.Get("Accept")
	if accept == "" || accept == "*/*" {
		accept = def
	}
	accept = mediaType(strings.Split(accept, ",")[0], def)
	if accept == "*/*" {
		accept = def
	}
	if accept == "application/x-jsonlines" {
		accept = "application/jsonlines"
	}
	if accept != "text/csv" && accept != "application/json" && accept != "application/jsonlines" {
		s.fail(w, runtimeAPI, &httpError{http.StatusNotAcceptable, "ValidationError",
			fmt.Sprintf("accept type %q is not supported: use text/csv, application/json or application/jsonlines", clipString(accept))})
		return
	}
	body, herr := s.readBody(w, r)
	if herr != nil {
		s.fail(w, runtimeAPI, herr)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	m := s.src.Current()
	sc := newScoring(m, accept, rowsHint(ct, body))
	if herr := decodeRows(ct, body, m.Features(), featureIndex(m.Features()), sc.add); herr != nil {
		s.fail(w, runtimeAPI, herr)
		return
	}
	if herr := sc.finish(); herr != nil {
		s.fail(w, runtimeAPI, herr)
		return
	}
	h := w.Header()
	h.Set("Content-Type", accept)
	h.Set("X-Amzn-Invoked-Production-Variant", s.o.Variant)
	h.Set("X-Amzn-SageMaker-Custom-Attributes", "model_version="+m.Version())
	h.Set("Content-Length", strconv.Itoa(len(sc.resp)))
	w.WriteHeader(http.StatusOK)
	w.Write(sc.resp)
}

// readBody reads the whole body into one buffer: exactly Content-Length
// bytes when the client sent it, else doubling up to the limit.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpError) {
	limit := s.o.MaxBodyBytes
	tooLarge := &httpError{http.StatusRequestEntityTooLarge, "ValidationError",
		fmt.Sprintf("request body is over the %d byte limit", limit)}
	if r.ContentLength > limit {
		tooLarge.msg = fmt.Sprintf("request body of %d bytes is over the %d byte limit", r.ContentLength, limit)
		return nil, tooLarge
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	var mbe *http.MaxBytesError
	if r.ContentLength >= 0 {
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(rd, body); err != nil {
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			return nil, badInput("reading body: %v", err)
		}
		return body, nil
	}
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	if _, err := buf.ReadFrom(rd); err != nil {
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badInput("reading body: %v", err)
	}
	return buf.Bytes(), nil
}

func featureIndex(features []string) map[string]int {
	idx := make(map[string]int, len(features))
	for j, f := range features {
		idx[f] = j
	}
	return idx
}

// blockValues bounds the feature values of one block of rows predicted
// together (256 KB), so a request's memory is its body, its scores and its
// response.
const blockValues = 32 << 10

// maxScoreText is the longest shortest-round-trip float64 text
// ("-2.2250738585072014e-308").
const maxScoreText = 24

// scoring collects decoded rows into blocks and predicts each full block
// into scores; finish then writes the response in one allocation. Scores
// are kept as numbers, not text, until every row is known good: a bad row
// late in the body must still turn the whole answer into an error.
type scoring struct {
	m       *Model
	accept  string
	cols    [][]float64
	out     [][]float64
	n       int       // rows in the current block
	hint    int       // rows expected (rowsHint)
	scores  []float64 // row-major, Outputs() per row
	scratch Scratch
	resp    []byte
}

// rowsHint estimates, cheaply, the rows a body holds so the scores are
// allocated once: a CSV row ends a line; a JSON instance opens with [ or {
// (an over-count for nested ones). It is capped at one row per 3 bytes so
// a body of brackets cannot reserve more than ~3 times itself; bodies of
// even smaller rows grow the scores by doubling.
func rowsHint(ct string, body []byte) int {
	n := bytes.Count(body, []byte{'['}) + bytes.Count(body, []byte{'{'})
	if ct == "text/csv" {
		n = bytes.Count(body, []byte{'\n'}) + 1
	}
	return min(n, len(body)/3+1)
}

func newScoring(m *Model, accept string, hint int) *scoring {
	nf := len(m.Features())
	block := min(max(blockValues/max(nf, 1), 16), 1024)
	sc := &scoring{m: m, accept: accept, cols: make([][]float64, nf), out: make([][]float64, m.Outputs())}
	for j := range sc.cols {
		sc.cols[j] = make([]float64, block)
	}
	for k := range sc.out {
		sc.out[k] = make([]float64, block)
	}
	sc.hint = hint
	return sc
}

func (sc *scoring) add(row []float64) *httpError {
	for j, v := range row {
		sc.cols[j][sc.n] = v
	}
	sc.n++
	if len(sc.cols) == 0 || sc.n == len(sc.cols[0]) {
		return sc.flush()
	}
	return nil
}

// flush predicts the current block. A score that is not finite (a model
// whose margin overflows) is refused rather than written: NaN and Inf are
// not JSON, and no client can use them. 422 because the same request will
// always fail, so it must not count against a breaker.
func (sc *scoring) flush() *httpError {
	if sc.n == 0 {
		return nil
	}
	if err := sc.m.Predict(sc.cols, sc.n, sc.out, &sc.scratch); err != nil {
		return &httpError{http.StatusInternalServerError, "ModelError", err.Error()}
	}
	nout := len(sc.out)
	done := len(sc.scores) / max(nout, 1)
	if need := len(sc.scores) + sc.n*nout; need > cap(sc.scores) {
		// Allocated at the first block (an invalid body costs nothing),
		// then doubled, not grown by append's 1.25x.
		grown := make([]float64, len(sc.scores), max(need, sc.hint*nout, 2*cap(sc.scores)))
		copy(grown, sc.scores)
		sc.scores = grown
	}
	for i := range sc.n {
		for k := range sc.out {
			v := sc.out[k][i]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return &httpError{http.StatusUnprocessableEntity, "ModelError",
					fmt.Sprintf("row %d: the model's score %d is %v, not a finite number", done+i+1, k, v)}
			}
			sc.scores = append(sc.scores, v)
		}
	}
	sc.n = 0
	return nil
}

// finish predicts the last block and writes the response.
func (sc *scoring) finish() *httpError {
	if herr := sc.flush(); herr != nil {
		return herr
	}
	nout := len(sc.out)
	rows := len(sc.scores) / max(nout, 1)
	// An upper bound of the response, so it is allocated exactly once.
	perRow := nout * (maxScoreText + 1) // numbers and separators
	if sc.accept != "text/csv" {
		perRow += len(`{"score":[]},`)
	}
	b := make([]byte, 0, len(`{"predictions":[]}`)+rows*perRow)
	if sc.accept == "application/json" {
		b = append(b, `{"predictions":[`...)
	}
	for i := range rows {
		row := sc.scores[i*nout : (i+1)*nout]
		switch sc.accept {
		case "text/csv":
			for k, v := range row {
				if k > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
			b = append(b, '\n')
		default:
			if sc.accept == "application/json" && i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"score":`...)
			if nout == 1 {
				b = strconv.AppendFloat(b, row[0], 'g', -1, 64)
			} else {
				b = append(b, '[')
				for k, v := range row {
					if k > 0 {
						b = append(b, ',')
					}
					b = strconv.AppendFloat(b, v, 'g', -1, 64)
				}
				b = append(b, ']')
			}
			b = append(b, '}')
			if sc.accept == "application/jsonlines" {
				b = append(b, '\n')
			}
		}
	}
	if sc.accept == "application/json" {
		b = append(b, "]}"...)
	}
	sc.resp = b
	return nil
}
