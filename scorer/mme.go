package scorer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MultiModelOptions configures NewMultiModelHandler.
type MultiModelOptions struct {
	// Serve configures how every model scores, as for NewHandler (body
	// limit, variant, logger). Its MaxConcurrent bounds the requests being
	// scored at once across all the models together.
	Serve ServeOptions
	// MemoryBudget bounds the loaded models' summed HeapBytes. A load that
	// would pass it first unloads the least recently used idle models; if
	// that is not enough, or the model alone is larger than the budget, it
	// is answered 507. Zero or less: DefaultMemoryBudget().
	MemoryBudget int64
	// Limits bound each model as it loads (zero fields take their
	// defaults). MaxHeapBytes is lowered to MemoryBudget, so that a model
	// that could never fit stops compiling as soon as it passes it.
	Limits ModelLimits
	// Load options applied to every model (e.g. WithKind).
	Load []LoadOption
	// Metrics may be nil.
	Metrics *MultiModelMetrics
}

// TargetModelHeader is the header by which the SageMaker runtime API names
// the model of a multi-model endpoint (InvokeEndpoint's TargetModel).
const TargetModelHeader = "X-Amzn-SageMaker-Target-Model"

// maxConcurrentLoads bounds the models being read and compiled at once: a
// model being parsed holds its file and parse tree, several times its
// compiled size, outside the memory budget.
const maxConcurrentLoads = 2

// maxLoadRequestBytes bounds a POST /models body ({"model_name", "url"}).
const maxLoadRequestBytes = 64 << 10

// maxListModels is the most models GET /models returns at once, and its
// default limit, as in the multi-model server SageMaker's toolkit runs.
const maxListModels = 100

// NewMultiModelHandler returns the HTTP handler of `streamscore serve
// --multi-model`: SageMaker's multi-model endpoint container contract.
//
//	GET    /ping                     200
//	POST   /models                   {"model_name": N, "url": DIR} loads DIR (a directory
//	                                 SageMaker unpacked model.tar.gz into, a model.tar.gz or a model
//	                                 file) as N: 200; 409 if N is loaded; 404 if DIR does not exist;
//	                                 400 if it holds no valid model; 507 if it does not fit in memory
//	GET    /models                   {"models": [{"modelName", "modelUrl"}], "nextPageToken"}, by
//	                                 name; ?limit= (at most 100) and ?next_page_token=
//	GET    /models/{name}            the model's name, url, version, shape and memory; 404
//	DELETE /models/{name}            unloads it (requests in flight finish first); 404
//	POST   /models/{name}/invoke     scores as NewHandler's POST /invocations does; 404
//	POST   /endpoints/{e}/invocations the runtime API path: the model is the
//	                                 X-Amzn-SageMaker-Target-Model header; not loaded or
//	                                 absent: 400 ValidationError
//
// Management errors are JSON as the multi-model server writes them:
// {"code": 404, "type": "ModelNotFoundException", "message": ...}. Each
// model is scored by its own NewHandler, so every content type, response
// and error of the single-model server holds per model.
func NewMultiModelHandler(o MultiModelOptions) http.Handler {
	// NewHandler's defaults, resolved here because the concurrency bound is
	// shared: each model's own handler is given the same number, so only
	// this one ever refuses.
	o.Serve = o.Serve.withDefaults()
	if o.MemoryBudget <= 0 {
		var from string
		o.MemoryBudget, from = DefaultMemoryBudget()
		o.Serve.Logger.Info("multi-model memory budget", "bytes", o.MemoryBudget, "from", from)
	}
	lim := o.Limits.withDefaults()
	lim.MaxHeapBytes = min(lim.MaxHeapBytes, o.MemoryBudget)
	mm := &multiModel{
		o:     o,
		log:   o.Serve.Logger,
		store: newModelStore(o.MemoryBudget, o.Metrics),
		sem:   make(chan struct{}, o.Serve.MaxConcurrent),
		loads: make(chan struct{}, maxConcurrentLoads),
		load:  append(append([]LoadOption(nil), o.Load...), WithLimits(lim)),
	}
	mux := http.NewServeMux()
	mm.mux = mux
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /models", mm.handleLoad)
	mux.HandleFunc("GET /models", mm.handleList)
	mux.HandleFunc("GET /models/{name}", mm.handleDescribe)
	mux.HandleFunc("DELETE /models/{name}", mm.handleUnload)
	mux.HandleFunc("POST /models/{name}/invoke", func(w http.ResponseWriter, r *http.Request) {
		mm.invoke(w, withPath(r, "/invocations"), r.PathValue("name"), false)
	})
	mux.HandleFunc("POST /invocations", mm.handleInvocations)
	mux.HandleFunc("POST /endpoints/{endpoint}/invocations", func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get(TargetModelHeader)
		if target == "" {
			mm.errs.fail(w, true, &httpError{http.StatusBadRequest, "ValidationError",
				fmt.Sprintf("endpoint %s is a multi-model endpoint: the request must name its model in the %s header (InvokeEndpoint's TargetModel)", clipString(r.PathValue("endpoint")), TargetModelHeader)})
			return
		}
		mm.invoke(w, withoutTarget(r), target, true)
	})
	return mm
}

type multiModel struct {
	mux   *http.ServeMux
	o     MultiModelOptions
	log   *slog.Logger
	store *modelStore
	// sem bounds the requests scored at once across every model; each
	// holds its body and response, so it bounds memory as NewHandler's
	// does. A request that finds it full is answered 503 at once.
	sem chan struct{}
	// loads bounds the models being parsed at once; further loads wait.
	loads chan struct{}
	load  []LoadOption
	// errs writes scoring errors exactly as the single-model server does.
	errs server
}

func (mm *multiModel) ServeHTTP(w http.ResponseWriter, r *http.Request) { mm.mux.ServeHTTP(w, r) }

// withPath returns r addressed to p, for the model's single-model handler.
func withPath(r *http.Request, p string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = p, ""
	r2.URL = &u
	return r2
}

// withoutTarget is r without the target model header, for the model's own
// single-model handler, which refuses one as a single-model endpoint does.
func withoutTarget(r *http.Request) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	r2.Header.Del(TargetModelHeader)
	return r2
}

// invoke scores the request with the named model's single-model handler.
// The model is held for the whole request, so unloading it meanwhile lets
// the request finish.
func (mm *multiModel) invoke(w http.ResponseWriter, r *http.Request, name string, runtimeAPI bool) {
	select {
	case mm.sem <- struct{}{}:
		defer func() { <-mm.sem }()
	default:
		w.Header().Set("Retry-After", "1")
		mm.errs.fail(w, runtimeAPI, &httpError{http.StatusServiceUnavailable, "ServiceUnavailable",
			fmt.Sprintf("the server is at its limit of %d concurrent requests; retry", cap(mm.sem))})
		return
	}
	e := mm.store.acquire(name)
	if e == nil {
		if runtimeAPI {
			mm.errs.fail(w, true, &httpError{http.StatusBadRequest, "ValidationError",
				fmt.Sprintf("target model %q is not loaded on this endpoint (load it with POST /models)", clipString(name))})
			return
		}
		writeMMSError(w, http.StatusNotFound, "ModelNotFoundException", fmt.Sprintf("Model not found: %s", clipString(name)))
		return
	}
	defer mm.store.release(e)
	e.h.ServeHTTP(w, r)
}

// handleInvocations: SageMaker sends a multi-model container no POST
// /invocations, but the multi-model server answers it for the model named
// by ?model_name= (and this server also by the target model header).
func (mm *multiModel) handleInvocations(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("model_name")
	if name == "" {
		name = r.Header.Get(TargetModelHeader)
	}
	if name == "" {
		writeMMSError(w, http.StatusBadRequest, "BadRequestException",
			"this is a multi-model server: name the model with ?model_name=, the "+TargetModelHeader+" header, or POST /models/NAME/invoke")
		return
	}
	mm.invoke(w, r, name, false)
}

// loadRequest is POST /models's body; other fields the multi-model server
// accepts (handler, batch_size, initial_workers...) are ignored.
type loadRequest struct {
	ModelName string `json:"model_name"`
	URL       string `json:"url"`
}

func (mm *multiModel) handleLoad(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoadRequestBytes))
	if err != nil {
		mm.o.Metrics.load(loadInvalid)
		writeMMSError(w, http.StatusBadRequest, "BadRequestException", fmt.Sprintf("reading the request body: %v", err))
		return
	}
	var req loadRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			mm.o.Metrics.load(loadInvalid)
			writeMMSError(w, http.StatusBadRequest, "BadRequestException", fmt.Sprintf(`the body is not {"model_name": ..., "url": ...}: %v`, err))
			return
		}
	} else {
		// The multi-model server also takes them as query parameters.
		q := r.URL.Query()
		req.ModelName, req.URL = q.Get("model_name"), q.Get("url")
	}
	switch {
	case req.URL == "":
		mm.o.Metrics.load(loadInvalid)
		writeMMSError(w, http.StatusBadRequest, "BadRequestException", "Parameter url is required.")
		return
	case req.ModelName == "":
		mm.o.Metrics.load(loadInvalid)
		writeMMSError(w, http.StatusBadRequest, "BadRequestException", "Parameter model_name is required.")
		return
	}
	status, typ, err := mm.loadModel(r.Context(), req.ModelName, req.URL)
	if err != nil {
		writeMMSError(w, status, typ, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": fmt.Sprintf("Model %q loaded", req.ModelName)})
}

// loadModel loads url as name and reports the status to answer with.
func (mm *multiModel) loadModel(ctx context.Context, name, url string) (int, string, error) {
	if err := mm.store.reserve(name); err != nil {
		mm.o.Metrics.load(loadConflict)
		return http.StatusConflict, "ConflictStatusException", err
	}
	select {
	case mm.loads <- struct{}{}:
	case <-ctx.Done():
		mm.store.abandon(name)
		return http.StatusServiceUnavailable, "ServiceUnavailableException", fmt.Errorf("model %q: the request ended while waiting to load: %w", name, ctx.Err())
	}
	start := time.Now()
	m, err := LoadModel(ctx, url, nil, mm.load...)
	<-mm.loads
	if err != nil {
		mm.store.abandon(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			mm.o.Metrics.load(loadNotFound)
			return http.StatusNotFound, "ModelNotFoundException", fmt.Errorf("model %q: url %s: %w", name, url, err)
		case isOverHeapBudget(err):
			mm.o.Metrics.load(loadInsufficientMemory)
			_, budget := mm.store.usage()
			return http.StatusInsufficientStorage, "InsufficientMemoryException",
				fmt.Errorf("%w: model %q is larger than the whole memory budget of %d bytes: %w", errNoMemory, name, budget, err)
		}
		mm.o.Metrics.load(loadInvalid)
		return http.StatusBadRequest, "BadRequestException", fmt.Errorf("model %q: %w", name, err)
	}
	e := &loadedModel{name: name, url: url, model: m, bytes: m.HeapBytes(), h: NewHandler(m, mm.o.Serve)}
	evicted, err := mm.store.commit(e)
	if err != nil {
		mm.o.Metrics.load(loadInsufficientMemory)
		used, budget := mm.store.usage()
		mm.log.Warn("model does not fit in memory", "model", name, "bytes", e.bytes, "used", used, "budget", budget, "err", err)
		return http.StatusInsufficientStorage, "InsufficientMemoryException", err
	}
	mm.o.Metrics.load(loadOK)
	for _, v := range evicted {
		mm.log.Info("unloaded the least recently used model to make room", "model", v.name, "bytes", v.bytes, "for", name)
	}
	used, budget := mm.store.usage()
	inf := m.Info()
	mm.log.Info("loaded model", "model", name, "url", url, "version", inf.Version, "kind", inf.Kind,
		"objective", inf.Objective, "bytes", e.bytes, "used", used, "budget", budget, "took", time.Since(start).Round(time.Millisecond))
	return http.StatusOK, "", nil
}

// isOverHeapBudget reports whether loading stopped at the compiled-size
// limit, which the budget lowers: the limit error names it (limitError).
func isOverHeapBudget(err error) bool {
	return errors.Is(err, ErrModelLimit) && strings.Contains(err.Error(), "max_heap_bytes")
}

func (mm *multiModel) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := maxListModels, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeMMSError(w, http.StatusBadRequest, "BadRequestException", fmt.Sprintf("limit %q is not a number", clipString(v)))
			return
		}
		if n > 0 && n < maxListModels {
			limit = n
		}
	}
	if v := q.Get("next_page_token"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeMMSError(w, http.StatusBadRequest, "BadRequestException", fmt.Sprintf("next_page_token %q is not one this server returned", clipString(v)))
			return
		}
		offset = n
	}
	names, urls, more := mm.store.list(offset, limit)
	type item struct {
		ModelName string `json:"modelName"`
		ModelURL  string `json:"modelUrl"`
	}
	resp := struct {
		Models        []item `json:"models"`
		NextPageToken string `json:"nextPageToken,omitempty"`
	}{Models: make([]item, len(names))}
	for i := range names {
		resp.Models[i] = item{names[i], urls[i]}
	}
	if more {
		resp.NextPageToken = strconv.Itoa(offset + len(names))
	}
	writeJSON(w, http.StatusOK, resp)
}

// modelDescription is GET /models/{name}'s answer: the contract's
// modelName and modelUrl, then what this server knows of the model.
type modelDescription struct {
	ModelName    string    `json:"modelName"`
	ModelURL     string    `json:"modelUrl"`
	ModelVersion string    `json:"modelVersion"`
	Kind         string    `json:"kind"`
	Objective    string    `json:"objective"`
	Encoding     string    `json:"encoding"`
	Source       string    `json:"source"`
	SHA256       string    `json:"sha256"`
	Features     []string  `json:"features"`
	Outputs      int       `json:"outputs"`
	Trees        int       `json:"trees"`
	MemoryBytes  int64     `json:"memoryBytes"`
	LoadedAt     time.Time `json:"loadedAt"`
	LastUsed     time.Time `json:"lastUsed"`
	InFlight     int       `json:"inFlight"`
}

func (mm *multiModel) handleDescribe(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, ok := mm.store.describe(name)
	if !ok {
		writeMMSError(w, http.StatusNotFound, "ModelNotFoundException", fmt.Sprintf("Model not found: %s", clipString(name)))
		return
	}
	writeJSON(w, http.StatusOK, modelDescription{
		ModelName: st.Name, ModelURL: st.URL, ModelVersion: st.Info.Version, Kind: st.Info.Kind,
		Objective: st.Info.Objective, Encoding: st.Info.Encoding, Source: st.Info.Source, SHA256: st.Info.SHA256,
		Features: st.Info.Features, Outputs: st.Info.Outputs, Trees: st.Info.Trees, MemoryBytes: st.Bytes,
		LoadedAt: st.LoadedAt.UTC(), LastUsed: st.LastUsed.UTC(), InFlight: st.InFlight,
	})
}

func (mm *multiModel) handleUnload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	e, ok := mm.store.unload(name)
	if !ok {
		writeMMSError(w, http.StatusNotFound, "ModelNotFoundException", fmt.Sprintf("Model not found: %s", clipString(name)))
		return
	}
	used, budget := mm.store.usage()
	mm.log.Info("unloaded model", "model", name, "bytes", e.bytes, "used", used, "budget", budget)
	writeJSON(w, http.StatusOK, map[string]string{"status": fmt.Sprintf("Model %q unloaded", name)})
}

// writeMMSError answers as the multi-model server does.
func writeMMSError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, struct {
		Code    int    `json:"code"`
		Type    string `json:"type"`
		Message string `json:"message"`
	}{status, typ, msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
