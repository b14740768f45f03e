package workerload

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeECS serves recorded ECS task metadata v4 responses. It is a fake of
// the ECS agent's task metadata endpoint, acceptable because no local
// server exists: the agent serves it only to containers of an ECS task.
// The JSON in testdata/ecs is shaped on the documented v4 format
// (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4.html):
// the container's metadata at the root, the task's at /task, and Docker's
// container stats at /stats.
type fakeECS struct {
	mu     sync.Mutex
	bodies map[string]string // path under the root ("", "/task", "/stats")
	fail   map[string]int    // path -> requests still answered with 500
	hits   map[string]int
	srv    *httptest.Server
}

const ecsPath = "/v4/3b1f5c0d9a7e4b2c8f6a1d0e9c8b7a6f-1234567890"

func newFakeECS(t *testing.T, container, task, stats string) *fakeECS {
	t.Helper()
	f := &fakeECS{
		bodies: map[string]string{"": container, "/task": task, "/stats": stats},
		fail:   map[string]int{},
		hits:   map[string]int{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		p, ok := strings.CutPrefix(r.URL.Path, ecsPath)
		body, known := f.bodies[p]
		if !ok || !known {
			http.NotFound(w, r)
			return
		}
		f.hits[p]++
		if f.fail[p] > 0 {
			f.fail[p]--
			http.Error(w, "agent unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeECS) uri() string { return f.srv.URL + ecsPath }

// failNext answers the next n requests for path with 500.
func (f *fakeECS) failNext(path string, n int) {
	f.mu.Lock()
	f.fail[path] = n
	f.mu.Unlock()
}

func (f *fakeECS) set(path, body string) {
	f.mu.Lock()
	f.bodies[path] = body
	f.mu.Unlock()
}

func recorded(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ecs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestECSPercentFromRecordedMetadata(t *testing.T) {
	f := newFakeECS(t, recorded(t, "container.json"), recorded(t, "task.json"), recorded(t, "stats-first.json"))
	src := NewECS(f.uri(), nil)
	// The agent has no previous read yet (precpu_stats zero): 0, as Java.
	if v := sample(t, src); v != 0 {
		t.Fatalf("first stats = %v, want 0", v)
	}
	// Δtotal 0.375 s of Δsystem 1 s on 2 online CPUs = 0.75 cores; this
	// container has 768 of the task's 1024 CPU shares of 2 vCPUs = 1.5 CPUs.
	f.set("/stats", recorded(t, "stats.json"))
	if v := sample(t, src); v != 50 {
		t.Fatalf("recorded stats = %v%%, want 50", v)
	}
	sample(t, src)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hits["/task"] != 1 || f.hits[""] != 1 || f.hits["/stats"] != 3 {
		t.Fatalf("requests %v: want the limit read once and /stats every sample", f.hits)
	}
}

func TestECSLimitCases(t *testing.T) {
	stats := func(online, total, preTotal, system, preSystem string) string {
		return `{"cpu_stats":{"cpu_usage":{"total_usage":` + total + `},"system_cpu_usage":` + system +
			`,"online_cpus":` + online + `},"precpu_stats":{"cpu_usage":{"total_usage":` + preTotal +
			`},"system_cpu_usage":` + preSystem + `}}`
	}
	for _, tc := range []struct {
		name, container, task, stats string
		want                         float64
	}{{
		name:      "no task limit: online CPUs",
		container: `{"DockerId":"me"}`,
		task:      `{"Containers":[{"DockerId":"me","Limits":{"CPU":512}},{"DockerId":"x","Limits":{"CPU":512}}]}`,
		// 0.25 of the system on 4 CPUs = 1 core of half of 4 CPUs.
		stats: stats("4", "1500000000", "1000000000", "4000000000", "2000000000"),
		want:  50,
	}, {
		name:      "container without shares counts as 2",
		container: `{"DockerId":"me"}`,
		task:      `{"Limits":{"CPU":1},"Containers":[{"DockerId":"me","Limits":{"CPU":0}},{"DockerId":"x","Limits":{"CPU":2}}]}`,
		// 0.125 × 2 = 0.25 cores of 2/4 × 1 vCPU.
		stats: stats("2", "1125000000", "1000000000", "2000000000", "1000000000"),
		want:  50,
	}, {
		name:      "container not listed: default 2 shares, capped",
		container: `{"DockerId":"elsewhere"}`,
		task:      recorded(t, "task.json"),
		stats:     recorded(t, "stats.json"),
		want:      100,
	}, {
		name:      "no system time passed: 100 as Java",
		container: recorded(t, "container.json"),
		task:      recorded(t, "task.json"),
		stats:     stats("2", "1125000000", "1000000000", "2000000000", "2000000000"),
		want:      100,
	}, {
		name:      "online_cpus missing: percpu_usage length",
		container: recorded(t, "container.json"),
		task:      recorded(t, "task.json"),
		stats: `{"cpu_stats":{"cpu_usage":{"total_usage":1375000000,"percpu_usage":[1,2]},"system_cpu_usage":2000000000},` +
			`"precpu_stats":{"cpu_usage":{"total_usage":1000000000},"system_cpu_usage":1000000000}}`,
		want: 50,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeECS(t, tc.container, tc.task, tc.stats)
			if v := sample(t, NewECS(f.uri(), nil)); v != tc.want {
				t.Fatalf("= %v%%, want %v", v, tc.want)
			}
		})
	}
}

func TestECSTaskReadRetriedUntilKnown(t *testing.T) {
	f := newFakeECS(t, recorded(t, "container.json"), recorded(t, "task.json"), recorded(t, "stats.json"))
	f.failNext("/task", 1)
	src := NewECS(f.uri()+"/", nil) // a trailing slash is tolerated
	_, err := src.Sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), f.uri()+"/task") || !strings.Contains(err.Error(), "500") {
		t.Fatalf("failed /task: %v, want the URL and status", err)
	}
	// Java would keep its limit at -1 from here on; we read it again.
	if v := sample(t, src); v != 50 {
		t.Fatalf("after the agent recovered = %v, want 50", v)
	}
}

func TestECSBadStatsNameTheField(t *testing.T) {
	f := newFakeECS(t, recorded(t, "container.json"), recorded(t, "task.json"),
		`{"cpu_stats":{"cpu_usage":{"total_usage":"lots"}}}`)
	_, err := NewECS(f.uri(), nil).Sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cpu_usage.total_usage") || !strings.Contains(err.Error(), "/stats") {
		t.Fatalf("bad stats: %v, want the URL and the field", err)
	}
	f.set("/stats", `{"cpu_stats":{"cpu_usage":{"total_usage":1}}}`)
	_, err = NewECS(f.uri(), nil).Sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), "online_cpus") {
		t.Fatalf("no CPU count: %v", err)
	}
	f.set("/stats", recorded(t, "stats.json"))
	f.set("/task", `{"Limits":{"CPU":0},"Containers":[]}`)
	_, err = NewECS(f.uri(), nil).Sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Limits.CPU 0") {
		t.Fatalf("zero task limit: %v", err)
	}
}
