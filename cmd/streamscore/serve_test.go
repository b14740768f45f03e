package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer the child process and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `streamscore serve` listens on loopback unless told otherwise, and the
// container's STREAMSCORE_SERVE_HOST (or --host) opens it to every interface.
func TestServeModelListenAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"default", nil, "127.0.0.1"},
		{"container", []string{"STREAMSCORE_SERVE_HOST=0.0.0.0"}, "0.0.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			cmd := exec.Command(binary(t), "serve", "--model", "scorer/testdata/fidelity/binary_logistic.json",
				"--port", strconv.Itoa(port), "--reload-interval", "1h")
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "STREAMSCORE_SERVE_HOST=")
			cmd.Env = append(cmd.Env, tc.env...)
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(os.Interrupt)
				cmd.Wait()
			}()
			want := "addr=" + net.JoinHostPort(tc.want, strconv.Itoa(port))
			deadline := time.Now().Add(60 * time.Second)
			for {
				resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/ping")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no /ping answer within 60 s: %v\n%s", err, stderr.String())
				}
				time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
			}
			if !strings.Contains(stderr.String(), want) {
				t.Fatalf("log does not say %s:\n%s", want, stderr.String())
			}
		})
	}
}

// startServeBinary runs `streamscore serve args...` from the repository
// root on a free loopback port, with env added to a neutral environment,
// and waits for GET /ping. It returns the base URL and the log.
func startServeBinary(t *testing.T, env []string, args ...string) (string, *lockedBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(binary(t), append([]string{"serve", "--port", port, "--reload-interval", "1h"}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "STREAMSCORE_SERVE_HOST=", multiModelEnv+"=", "SAGEMAKER_BIND_TO_PORT=")
	cmd.Env = append(cmd.Env, env...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	url := "http://127.0.0.1:" + port
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, &stderr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /ping answer within 60 s: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
}

func httpDo(t *testing.T, method, url, ct, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
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
	return resp.StatusCode, string(b)
}

// SageMaker's SAGEMAKER_MULTI_MODEL=true (or --multi-model) switches the
// binary to the multi-model contract, without reading --model; an
// explicit --multi-model=false wins over the variable; --memory-budget
// bounds what loads. Without either the binary serves its one model and has
// no /models.
func TestServeMultiModelMode(t *testing.T) {
	model, err := filepath.Abs("../../scorer/testdata/fidelity/reg_squarederror.json")
	if err != nil {
		t.Fatal(err)
	}
	const row = "0.5,1.2,1900,0.4,0.47,0.25,2,4\n"
	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		multi    bool
		loadCode int
	}{
		{"environment", []string{multiModelEnv + "=true"}, nil, true, 200},
		{"flag", nil, []string{"--multi-model", "--memory-budget", "64MiB"}, true, 200},
		{"budget too small", nil, []string{"--multi-model", "--memory-budget", "1KiB"}, true, 507},
		{"environment false", []string{multiModelEnv + "=false"}, []string{"--model", model}, false, 0},
		{"flag over environment", []string{multiModelEnv + "=true"}, []string{"--multi-model=false", "--model", model}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, log := startServeBinary(t, tc.env, tc.args...)
			code, body := httpDo(t, "GET", url+"/models", "", "")
			if !tc.multi {
				if code != 404 {
					t.Fatalf("single-model server: GET /models %d %s", code, body)
				}
				if code, body := httpDo(t, "POST", url+"/invocations", "text/csv", row); code != 200 || strings.Count(body, "\n") != 1 {
					t.Fatalf("single-model invocation: %d %s", code, body)
				}
				return
			}
			if code != 200 || strings.TrimSpace(body) != `{"models":[]}` {
				t.Fatalf("GET /models: %d %s\n%s", code, body, log.String())
			}
			code, body = httpDo(t, "POST", url+"/models", "application/json", `{"model_name":"m","url":"`+model+`"}`)
			if code != tc.loadCode {
				t.Fatalf("POST /models: %d %s, want %d", code, body, tc.loadCode)
			}
			if code != 200 {
				return
			}
			code, scored := httpDo(t, "POST", url+"/models/m/invoke", "text/csv", row)
			if code != 200 || strings.Count(scored, "\n") != 1 {
				t.Fatalf("invoke: %d %s", code, scored)
			}
			code, body = httpDo(t, "POST", url+"/endpoints/e/invocations", "text/csv", row, "X-Amzn-SageMaker-Target-Model", "m")
			if code != 200 || body != scored {
				t.Fatalf("runtime API with target model: %d %q, want %q", code, body, scored)
			}
			if !strings.Contains(log.String(), "serving multi-model endpoint") {
				t.Fatalf("log does not say multi-model:\n%s", log.String())
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"": 0, "536870912": 536870912, "512MiB": 512 << 20, "2gib": 2 << 30, "1.5GB": 1_500_000_000, " 64 KiB ": 64 << 10, "100b": 100,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "0", "GiB", "12 parsecs", "1e30GiB", "NaN", "0.1"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("%q: %d, want an error", in, got)
		}
	}
}

// Any --memory-budget text is a positive size or an error; only an empty
// one is the default (0).
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"", "536870912", "512MiB", "1.5GB", "0.1", "NaN", "1e30GiB", "-1kb", " 64 KiB "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseByteSize(s)
		switch {
		case err != nil && v != 0:
			t.Fatalf("%q: %d with error %v", s, v, err)
		case err == nil && v == 0 && strings.TrimSpace(s) != "":
			t.Fatalf("%q: 0, the default, from a size", s)
		case v < 0:
			t.Fatalf("%q: %d", s, v)
		}
	})
}
