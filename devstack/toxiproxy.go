package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ToxiproxyClient drives a toxiproxy server's HTTP API: proxies between a client
// and a server of the stack, with toxics (latency, timeouts, resets) that
// simulate the failures a pipeline must survive.
type ToxiproxyClient struct {
	// URL is the API's base URL, e.g. http://127.0.0.1:8474.
	URL string
}

// Proxy is one toxiproxy proxy.
type Proxy struct {
	api *ToxiproxyClient
	// Name identifies the proxy in the API.
	Name string
	// Listen is the host:port clients dial instead of the upstream.
	Listen string
	// Upstream is the host:port the proxy forwards to.
	Upstream string
}

// CreateProxy creates a proxy listening on a free loopback port.
func (tp *ToxiproxyClient) CreateProxy(ctx context.Context, name, upstream string) (*Proxy, error) {
	var out struct {
		Listen string `json:"listen"`
	}
	err := tp.call(ctx, http.MethodPost, "/proxies", map[string]any{
		"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true,
	}, &out)
	if err != nil {
		return nil, err
	}
	return &Proxy{api: tp, Name: name, Listen: out.Listen, Upstream: upstream}, nil
}

// URL is the proxy's address as an http:// base URL.
func (p *Proxy) URL() string { return "http://" + p.Listen }

// SetEnabled turns the proxy on or off. Off, it refuses connections and
// drops open ones: the endpoint is down.
func (p *Proxy) SetEnabled(ctx context.Context, on bool) error {
	return p.api.call(ctx, http.MethodPost, "/proxies/"+p.Name, map[string]any{"enabled": on}, nil)
}

// AddToxic adds a toxic of the given type ("latency", "timeout",
// "reset_peer", "bandwidth", ...) on the downstream direction, with the
// type's attributes (e.g. {"latency": 500} in milliseconds).
func (p *Proxy) AddToxic(ctx context.Context, name, typ string, attrs map[string]any) error {
	return p.api.call(ctx, http.MethodPost, "/proxies/"+p.Name+"/toxics", map[string]any{
		"name": name, "type": typ, "stream": "downstream", "toxicity": 1.0, "attributes": attrs,
	}, nil)
}

// AddLatency delays every response by d.
func (p *Proxy) AddLatency(ctx context.Context, d time.Duration) error {
	return p.AddToxic(ctx, "latency", "latency", map[string]any{"latency": d.Milliseconds()})
}

// RemoveToxic removes the named toxic.
func (p *Proxy) RemoveToxic(ctx context.Context, name string) error {
	return p.api.call(ctx, http.MethodDelete, "/proxies/"+p.Name+"/toxics/"+name, nil, nil)
}

// Delete removes the proxy.
func (p *Proxy) Delete(ctx context.Context) error {
	return p.api.call(ctx, http.MethodDelete, "/proxies/"+p.Name, nil, nil)
}

func (tp *ToxiproxyClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, tp.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := loopbackHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("toxiproxy %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("toxiproxy %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("toxiproxy %s %s: %w", method, path, err)
		}
	}
	return nil
}
