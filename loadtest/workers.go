package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ReadyTimeout bounds the wait for the workers to hold their leases before
// the traffic starts. Generous: starting a Go process, creating lease tables
// and taking leases took 7 s on a loaded 2-core machine.
const ReadyTimeout = 2 * time.Minute

// workers are the pipeline processes of a run.
type workers struct {
	cmds  []*exec.Cmd
	addrs []string // each one's operations endpoint (/readyz)
	exits []chan struct{}
	log   *slog.Logger
}

// startWorkers starts n workers, each told to serve its operations
// endpoints on a loopback port picked here, so the run can ask whether it
// is ready.
func startWorkers(n int, cmd func(i int, listen string) *exec.Cmd, log *slog.Logger) (*workers, error) {
	ws := &workers{log: log}
	for i := range n {
		addr, err := freeLoopback()
		if err != nil {
			return ws, err
		}
		c := cmd(i, addr)
		if err := c.Start(); err != nil {
			return ws, fmt.Errorf("loadtest: starting worker %d: %w", i, err)
		}
		exited := make(chan struct{})
		go func() { _ = c.Wait(); close(exited) }()
		ws.cmds, ws.addrs, ws.exits = append(ws.cmds, c), append(ws.addrs, addr), append(ws.exits, exited)
		log.Info("worker started", "worker", i, "pid", c.Process.Pid, "ops", addr)
	}
	return ws, nil
}

// awaitReady waits until every worker's /readyz answers 200, that is until
// it holds leases and its sinks are healthy: the traffic's clock starts
// after that, so a worker's start-up never counts against the publisher's
// schedule or the latency.
func (ws *workers) awaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for i, addr := range ws.addrs {
		var last error
		for {
			if last = ready(ctx, client, addr); last == nil {
				break
			}
			select {
			case <-ws.exits[i]:
				return fmt.Errorf("loadtest: worker %d exited before it was ready (%v); see its log", i, ws.cmds[i].ProcessState)
			case <-ctx.Done():
				return fmt.Errorf("loadtest: worker %d not ready within %s: %w", i, ReadyTimeout, last)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func ready(ctx context.Context, c *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %s: %s", resp.Status, body)
	}
	return nil
}

// kill stops worker i with SIGKILL, as a crash would.
func (ws *workers) kill(i int) {
	if i < len(ws.cmds) {
		_ = ws.cmds[i].Process.Kill()
		<-ws.exits[i]
	}
}

// stop sends SIGTERM to every running worker and waits up to 90 s for each
// to flush and release its leases.
func (ws *workers) stop() error {
	var errs []error
	for i, c := range ws.cmds {
		select {
		case <-ws.exits[i]:
			continue
		default:
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case <-ws.exits[i]:
			if c.ProcessState != nil && !c.ProcessState.Success() {
				errs = append(errs, fmt.Errorf("worker %d: %s", i, c.ProcessState))
			}
		case <-time.After(90 * time.Second):
			_ = c.Process.Kill()
			<-ws.exits[i]
			errs = append(errs, fmt.Errorf("worker %d did not stop within 90 s of SIGTERM", i))
		}
	}
	return errors.Join(errs...)
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("loadtest: picking a port for a worker: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// WorkerCommand is the usual worker: this binary's `run` with the configs,
// serving its operations endpoints on listen, logging to logDir/worker-i.log.
func WorkerCommand(exe string, configs []string, logDir string, i int, listen string) *exec.Cmd {
	args := []string{"run", "--worker-id", fmt.Sprintf("loadtest-worker-%d", i), "--listen", listen}
	for _, c := range configs {
		args = append(args, "--config", c)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = os.Environ()
	if logDir != "" {
		if f, err := os.Create(filepath.Join(logDir, fmt.Sprintf("worker-%d.log", i))); err == nil {
			cmd.Stdout, cmd.Stderr = f, f
		}
	}
	return cmd
}
