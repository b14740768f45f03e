package scorer

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// proxied runs faultCycle with the remote scorer talking to the model
// server through a toxiproxy proxy, so faults are real network faults.
func proxied(t *testing.T, timeout time.Duration, withFallback bool, inject, heal func(context.Context, *devstack.Proxy) error) {
	env := devstacktest.New(t)
	var p *devstack.Proxy
	rs, _, bl, m := breakerFixture(t, withFallback, timeout, func(url string) string {
		p = env.Proxy(t, url)
		return p.URL()
	})
	ctx := context.Background()
	faultCycle(t, rs, bl, m, withFallback,
		func() {
			if err := inject(ctx, p); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			if err := heal(ctx, p); err != nil {
				t.Fatal(err)
			}
		})
}

// Latency beyond the per-call timeout trips the breaker (timeouts); rows are
// fallback-scored; removing the latency closes it through half-open.
func TestToxiproxyLatency(t *testing.T) {
	proxied(t, 200*time.Millisecond, true,
		func(ctx context.Context, p *devstack.Proxy) error { return p.AddLatency(ctx, 600*time.Millisecond) },
		func(ctx context.Context, p *devstack.Proxy) error { return p.RemoveToxic(ctx, "latency") })
}

// Connection resets trip the breaker; without a fallback every row is handed
// back unscored, none lost.
func TestToxiproxyConnectionReset(t *testing.T) {
	proxied(t, time.Second, false,
		func(ctx context.Context, p *devstack.Proxy) error {
			return p.AddToxic(ctx, "reset", "reset_peer", map[string]any{"timeout": 0})
		},
		func(ctx context.Context, p *devstack.Proxy) error { return p.RemoveToxic(ctx, "reset") })
}

// An endpoint that is down (connections refused) trips the breaker; it
// recovers when the endpoint comes back.
func TestToxiproxyEndpointDown(t *testing.T) {
	proxied(t, time.Second, true,
		func(ctx context.Context, p *devstack.Proxy) error { return p.SetEnabled(ctx, false) },
		func(ctx context.Context, p *devstack.Proxy) error { return p.SetEnabled(ctx, true) })
}
