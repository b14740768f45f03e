package scorer

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// Any POST /models body is answered with one of the contract's statuses
// and a JSON body, never a panic or a 500; a 200 lists the model. Urls
// are kept under testdata (a url is a path on the server, and reading a
// device file would only test the machine).
func FuzzMultiModelLoadRequest(f *testing.F) {
	f.Add(`{"model_name":"a","url":"testdata/fidelity/reg_squarederror.json"}`)
	f.Add(`{"model_name":"b","url":"testdata/fidelity/model.tar.gz"}`)
	f.Add(`{"model_name":"c","url":"testdata/fidelity"}`)
	f.Add(`{"model_name":"d","url":"testdata/fidelity/binary_logistic.input.csv"}`)
	f.Add(`{"model_name":"e","url":"testdata/nonexistent"}`)
	f.Add(`{"model_name":"","url":"testdata/fuzz_tiny.json"}`)
	f.Add(`{"url":"testdata/fuzz_tiny.ubj","handler":"x","batch_size":3}`)
	f.Add(`{"model_name":"a"`)
	f.Add(`[1,2]`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, body string) {
		var req loadRequest
		if json.Unmarshal([]byte(body), &req) == nil && req.URL != "" &&
			(!filepath.IsLocal(req.URL) || !strings.HasPrefix(filepath.Clean(req.URL), "testdata"+string(filepath.Separator))) {
			return
		}
		h := NewMultiModelHandler(MultiModelOptions{
			MemoryBudget: 1 << 20, Limits: ModelLimits{MaxFileBytes: 1 << 20},
			Serve: ServeOptions{Logger: slog.New(slog.DiscardHandler)},
		})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/models", strings.NewReader(body)))
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusInsufficientStorage:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("status %d, body not JSON: %q", w.Code, w.Body)
		}
		if w.Code != http.StatusOK {
			return
		}
		l := httptest.NewRecorder()
		h.ServeHTTP(l, httptest.NewRequest("GET", "/models", nil))
		var got mmeListing
		if err := json.Unmarshal(l.Body.Bytes(), &got); err != nil || len(got.Models) != 1 || got.Models[0].ModelName != req.ModelName {
			t.Fatalf("loaded %q from %q, listed %s", req.ModelName, body, l.Body)
		}
	})
}

// Whatever the cgroup and meminfo files hold, the default budget is
// positive and says where it came from.
func FuzzMemoryBudget(f *testing.F) {
	f.Add("0::/a\n", "max\n", "1073741824\n", "9223372036854771712\n", "MemTotal: 16777216 kB\n")
	f.Add("4:memory:/x\n", "", "", "536870912", "MemTotal: 1 kB")
	f.Add("garbage", "-5", "0", "1e9", "MemTotal:")
	f.Fuzz(func(t *testing.T, cgroup, v2, v2parent, v1, meminfo string) {
		fsys := fstest.MapFS{
			"proc/self/cgroup":                           {Data: []byte(cgroup)},
			"proc/meminfo":                               {Data: []byte(meminfo)},
			"sys/fs/cgroup/a/memory.max":                 {Data: []byte(v2)},
			"sys/fs/cgroup/memory.max":                   {Data: []byte(v2parent)},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte(v1)},
		}
		budget, from := memoryBudgetFrom(fsys)
		if budget <= 0 || from == "" {
			t.Fatalf("budget %d (%q)", budget, from)
		}
	})
}
