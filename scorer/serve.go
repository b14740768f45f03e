package scorer

import (
	"bufio"
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
	Logger  *slog.Logger
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
	if o.MaxBodyBytes <= 0 || o.MaxBodyBytes > MaxPayloadBytes {
		o.MaxBodyBytes = MaxPayloadBytes
	}
	if o.Variant == "" {
		o.Variant = "AllTraffic"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &server{src: src, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /execution-parameters", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"MaxConcurrentTransforms":%d,"BatchStrategy":"MULTI_RECORD","MaxPayloadInMB":%d}`, 2, o.MaxBodyBytes>>20)
	})
	mux.HandleFunc("POST /invocations", func(w http.ResponseWriter, r *http.Request) { s.invoke(w, r, false) })
	mux.HandleFunc("POST /endpoints/{name}/invocations", func(w http.ResponseWriter, r *http.Request) { s.invoke(w, r, true) })
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
	if r.ContentLength > s.o.MaxBodyBytes {
		s.fail(w, runtimeAPI, &httpError{http.StatusRequestEntityTooLarge, "ValidationError",
			fmt.Sprintf("request body of %d bytes is over the %d byte limit", r.ContentLength, s.o.MaxBodyBytes)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, runtimeAPI, &httpError{http.StatusRequestEntityTooLarge, "ValidationError",
				fmt.Sprintf("request body is over the %d byte limit", s.o.MaxBodyBytes)})
			return
		}
		s.fail(w, runtimeAPI, &httpError{http.StatusBadRequest, "ValidationError", "reading body: " + err.Error()})
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	ct := mediaType(r.Header.Get("Content-Type"), "text/csv")
	m := s.src.Current()
	cols, n, herr := decodeInstances(ct, body, m.Features())
	if herr != nil {
		s.fail(w, runtimeAPI, herr)
		return
	}
	out := make([][]float64, m.Outputs())
	for k := range out {
		out[k] = make([]float64, n)
	}
	var scratch Scratch
	if err := m.Predict(cols, n, out, &scratch); err != nil {
		s.fail(w, runtimeAPI, &httpError{http.StatusInternalServerError, "ModelError", err.Error()})
		return
	}
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
	var buf bytes.Buffer
	if herr := encodePredictions(&buf, accept, out, n); herr != nil {
		s.fail(w, runtimeAPI, herr)
		return
	}
	h := w.Header()
	h.Set("Content-Type", accept)
	h.Set("X-Amzn-Invoked-Production-Variant", s.o.Variant)
	h.Set("X-Amzn-SageMaker-Custom-Attributes", "model_version="+m.Version())
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

func badInput(format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, "ValidationError", fmt.Sprintf(format, args...)}
}

// decodeInstances parses a request body into feature columns in model order.
func decodeInstances(ct string, body []byte, features []string) ([][]float64, int, *httpError) {
	nf := len(features)
	cols := make([][]float64, nf)
	add := func(row []float64) {
		for j := range nf {
			cols[j] = append(cols[j], row[j])
		}
	}
	switch ct {
	case "text/csv":
		row := make([]float64, nf)
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 64*1024), MaxPayloadBytes+1)
		line, n := 0, 0
		for sc.Scan() {
			line++
			text := strings.TrimRight(sc.Text(), "\r")
			if strings.TrimSpace(text) == "" {
				continue
			}
			cells := strings.Split(text, ",")
			if len(cells) != nf {
				return nil, 0, badInput("line %d: %d values, the model takes %d features (%s)", line, len(cells), nf, strings.Join(features, ","))
			}
			for j, c := range cells {
				v, err := parseCell(c)
				if err != nil {
					return nil, 0, badInput("line %d, column %d (%s): %v", line, j+1, features[j], err)
				}
				row[j] = v
			}
			add(row)
			n++
		}
		if err := sc.Err(); err != nil {
			return nil, 0, badInput("csv: %v", err)
		}
		return cols, n, nil
	case "application/json":
		var doc json.RawMessage = body
		var wrapper struct {
			Instances json.RawMessage `json:"instances"`
		}
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
			if err := json.Unmarshal(body, &wrapper); err != nil {
				return nil, 0, badInput("json: %v", err)
			}
			if wrapper.Instances == nil {
				return nil, 0, badInput(`json: want {"instances": [...]} or an array of instances`)
			}
			doc = wrapper.Instances
		}
		var instances []json.RawMessage
		if err := json.Unmarshal(doc, &instances); err != nil {
			return nil, 0, badInput("json: instances: %v", err)
		}
		row := make([]float64, nf)
		for i, raw := range instances {
			if err := decodeInstance(raw, features, row); err != nil {
				return nil, 0, badInput("json: instance %d: %v", i, err)
			}
			add(row)
		}
		return cols, len(instances), nil
	case "application/jsonlines", "application/x-jsonlines":
		row := make([]float64, nf)
		n := 0
		for i, line := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := decodeInstance(line, features, row); err != nil {
				return nil, 0, badInput("jsonlines: line %d: %v", i+1, err)
			}
			add(row)
			n++
		}
		return cols, n, nil
	}
	return nil, 0, &httpError{http.StatusUnsupportedMediaType, "ValidationError",
		fmt.Sprintf("content type %q is not supported: use text/csv, application/json or application/jsonlines", ct)}
}

// decodeInstance reads one instance: [v...], {"features": [v...]} or
// {"name": v, ...}. null is a missing value.
func decodeInstance(raw []byte, features []string, row []float64) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var obj map[string]*float64
		var wrapped struct {
			Features []*float64 `json:"features"`
		}
		if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Features != nil {
			return fillRow(wrapped.Features, features, row)
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return err
		}
		known := 0
		for j, name := range features {
			v, ok := obj[name]
			if ok {
				known++
			}
			if ok && v != nil {
				row[j] = *v
			} else {
				row[j] = math.NaN()
			}
		}
		if known != len(obj) {
			for k := range obj {
				if !contains(features, k) {
					return fmt.Errorf("unknown feature %q", k)
				}
			}
		}
		return nil
	}
	var vals []*float64
	if err := json.Unmarshal(raw, &vals); err != nil {
		return err
	}
	return fillRow(vals, features, row)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func fillRow(vals []*float64, features []string, row []float64) error {
	if len(vals) != len(features) {
		return fmt.Errorf("%d values, the model takes %d features", len(vals), len(features))
	}
	for j, v := range vals {
		if v == nil {
			row[j] = math.NaN()
		} else {
			row[j] = *v
		}
	}
	return nil
}

func encodePredictions(buf *bytes.Buffer, accept string, out [][]float64, n int) *httpError {
	var b []byte
	appendScore := func(i int) {
		if len(out) == 1 {
			b = strconv.AppendFloat(b, out[0][i], 'g', -1, 64)
			return
		}
		b = append(b, '[')
		for k := range out {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, out[k][i], 'g', -1, 64)
		}
		b = append(b, ']')
	}
	switch accept {
	case "text/csv":
		for i := range n {
			for k := range out {
				if k > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, out[k][i], 'g', -1, 64)
			}
			b = append(b, '\n')
		}
	case "application/json":
		b = append(b, `{"predictions":[`...)
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"score":`...)
			appendScore(i)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	case "application/jsonlines", "application/x-jsonlines":
		for i := range n {
			b = append(b, `{"score":`...)
			appendScore(i)
			b = append(b, "}\n"...)
		}
	default:
		return &httpError{http.StatusNotAcceptable, "ValidationError",
			fmt.Sprintf("accept type %q is not supported: use text/csv, application/json or application/jsonlines", accept)}
	}
	buf.Write(b)
	return nil
}
