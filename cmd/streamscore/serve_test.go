package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
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
