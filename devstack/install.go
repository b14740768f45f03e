package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// goTools are the binaries the tools module (devstack/tools) builds into
// .devstack/bin, by import path. Their versions are pinned by its go.mod
// (tool directives) and go.sum.
var goTools = map[string]string{
	"versitygw":      "github.com/versity/versitygw/cmd/versitygw",
	"kumo":           "github.com/sivchari/kumo/cmd/kumo",
	"server":         "github.com/Shopify/toxiproxy/v2/cmd/server",
	"aws-lambda-rie": "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie",
	"staticcheck":    "honnef.co/go/tools/cmd/staticcheck",
	"benchstat":      "golang.org/x/perf/cmd/benchstat",
}

// goTools lists the Go-built servers the stack's configuration starts; the
// others are Node servers from devstack/node.
func (cfg Config) goTools() []string {
	var out []string
	add := func(t string) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, svc := range cfg.Services {
		switch {
		case svc == S3 && cfg.S3Server != S3rver:
			add("versitygw")
		case svc == CloudWatch, svc == Kinesis && cfg.KinesisServer == Kumo:
			add("kumo")
		case svc == Toxiproxy:
			add("server")
		}
	}
	return out
}

// BinDir is where the pinned Go tools of the repository at root are installed.
func BinDir(root string) string { return filepath.Join(root, ".devstack", "bin") }

// NodeDir is the npm project that pins the Node-based servers.
func NodeDir(root string) string { return filepath.Join(root, "devstack", "node") }

// ErrMissingPrerequisite is returned when a toolchain the stack needs is not
// installed; the message says what to install.
var ErrMissingPrerequisite = errors.New("missing prerequisite")

// GoTools lists the Go tools the repository pins, by binary name.
func GoTools() []string { return slices.Sorted(maps.Keys(goTools)) }

// Install makes sure the npm packages from devstack/node/package-lock.json
// (npm ci) and the named Go tools from devstack/tools are installed; with no
// names, every Go tool (staticcheck, benchstat and the Lambda runtime
// emulator included). Up installs only what its stack starts. A nil log
// means slog.Default().
func Install(ctx context.Context, root string, log *slog.Logger, tools ...string) error {
	if len(tools) == 0 {
		tools = GoTools()
	}
	for _, t := range tools {
		if _, ok := goTools[t]; !ok {
			return fmt.Errorf("devstack: no pinned Go tool %q (pinned: %s)", t, strings.Join(GoTools(), ", "))
		}
	}
	return install(ctx, root, log, tools)
}

// install runs npm ci and builds the named Go tools at the same time, each
// only when missing or older than its pins, so a fresh machine pays only
// for what it will start and a warm one nothing.
func install(ctx context.Context, root string, log *slog.Logger, tools []string) error {
	if log == nil {
		log = slog.Default()
	}
	if err := checkNode(ctx); err != nil {
		return err
	}
	var g errgroup.Group
	g.Go(func() error { return installNode(ctx, root, log) })
	g.Go(func() error { return installGoTools(ctx, root, log, tools) })
	return g.Wait()
}

var nodeVersion = regexp.MustCompile(`^v(\d+)\.`)

func checkNode(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return fmt.Errorf("%w: Node.js >= 20 is required for the local Kinesis, DynamoDB and SNS/SQS servers (install it, e.g. `apt-get install nodejs npm`): %v", ErrMissingPrerequisite, err)
	}
	m := nodeVersion.FindSubmatch(bytes.TrimSpace(out))
	if m == nil {
		return fmt.Errorf("%w: cannot read the Node.js version from %q", ErrMissingPrerequisite, out)
	}
	if major, _ := strconv.Atoi(string(m[1])); major < 20 {
		return fmt.Errorf("%w: Node.js >= 20 is required, found %s", ErrMissingPrerequisite, bytes.TrimSpace(out))
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("%w: npm is required to install the pinned local servers (install it, e.g. `apt-get install npm`)", ErrMissingPrerequisite)
	}
	return nil
}

// installNode runs `npm ci` when node_modules is missing or older than the lock file.
func installNode(ctx context.Context, root string, log *slog.Logger) error {
	dir := NodeDir(root)
	stamp := filepath.Join(dir, "node_modules", ".package-lock.json")
	if newerOrEqual(stamp, filepath.Join(dir, "package-lock.json")) {
		return nil
	}
	log.Info("installing pinned Node servers", "dir", dir)
	began := time.Now()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if err := runLogged(cmd, "npm ci in "+dir); err != nil {
		return err
	}
	log.Info("installed pinned Node servers", "took", time.Since(began).Round(time.Second))
	return nil
}

// installGoTools builds the named tools when one is missing or the pins
// changed after it was built, saying every 20 s that it is still at it: a
// cold build takes minutes.
func installGoTools(ctx context.Context, root string, log *slog.Logger, tools []string) error {
	bin := BinDir(root)
	sum := filepath.Join(root, "devstack", "tools", "go.sum")
	var stale []string
	for _, t := range tools {
		if !newerOrEqual(filepath.Join(bin, t), sum) {
			stale = append(stale, t)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return fmt.Errorf("%w: the Go toolchain is required to build the pinned local servers %v", ErrMissingPrerequisite, stale)
	}
	log.Info("building pinned Go tools (minutes on a cold cache)", "tools", strings.Join(stale, ","), "bin", bin)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	args := []string{"install"}
	for _, t := range stale {
		args = append(args, goTools[t])
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(root, "devstack", "tools")
	// kumo's dependency graph names two aws-sdk-go-v2 module versions that the
	// public checksum database does not hold; go.sum still pins their hashes.
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GONOSUMDB=github.com/aws/aws-sdk-go-v2")
	began := time.Now()
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(20 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				log.Info("still building pinned Go tools", "tools", strings.Join(stale, ","), "elapsed", time.Since(began).Round(time.Second))
			}
		}
	}()
	if err := runLogged(cmd, "go install in devstack/tools"); err != nil {
		return err
	}
	log.Info("built pinned Go tools", "tools", strings.Join(stale, ","), "took", time.Since(began).Round(time.Second))
	// go install leaves an up-to-date binary untouched; touch them so the
	// freshness check above holds until the pins change again.
	now := time.Now()
	for _, t := range stale {
		_ = os.Chtimes(filepath.Join(bin, t), now, now)
	}
	return nil
}

func runLogged(cmd *exec.Cmd, what string) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("devstack: %s failed: %w\n%s", what, err, tail(out.Bytes(), 40))
	}
	return nil
}

// newerOrEqual reports whether a exists and is not older than b.
func newerOrEqual(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	if err != nil {
		return true
	}
	return !sa.ModTime().Before(sb.ModTime())
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
