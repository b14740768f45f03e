package ops

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServerEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "streamscore_test_events_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(7)
	var ready atomic.Bool
	srv, err := Listen("127.0.0.1:0", reg, func(context.Context) error {
		if !ready.Load() {
			return errors.New("no leases held yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no leases held yet") {
		t.Errorf("/readyz while not ready = %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "streamscore_test_events_total 7") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, body lacks the registered counter or Go collector", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "shard", "shardId-000000000001")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"shard":"shardId-000000000001"`) {
		t.Errorf("log output = %q", buf.String())
	}
	if _, err := NewLogger(&buf, "xml", "info"); err == nil {
		t.Error("an unknown log format was accepted")
	}
	if _, err := NewLogger(&buf, "json", "loud"); err == nil {
		t.Error("an unknown log level was accepted")
	}
}
