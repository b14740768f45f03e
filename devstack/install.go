package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// goTools are the binaries `go install tool` builds from devstack/tools into
// .devstack/bin. Their versions are pinned by devstack/tools/go.mod and go.sum.
var goTools = []string{"versitygw", "kumo", "server", "aws-lambda-rie", "staticcheck", "benchstat"}

// BinDir is where the pinned Go tools of the repository at root are installed.
func BinDir(root string) string { return filepath.Join(root, ".devstack", "bin") }

// NodeDir is the npm project that pins the Node-based servers.
func NodeDir(root string) string { return filepath.Join(root, "devstack", "node") }

// ErrMissingPrerequisite is returned when a toolchain the stack needs is not
// installed; the message says what to install.
var ErrMissingPrerequisite = errors.New("missing prerequisite")

// Install makes sure every pinned server is installed: the npm packages from
// devstack/node/package-lock.json (npm ci) and the Go tools from
// devstack/tools (go install tool). It does work only when something is
// missing or the pins changed since the last install, so it is cheap to call
// before every start.
func Install(ctx context.Context, root string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkNode(ctx); err != nil {
		return err
	}
	if err := installNode(ctx, root, log); err != nil {
		return err
	}
	return installGoTools(ctx, root, log)
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
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	return runLogged(cmd, "npm ci in "+dir)
}

// installGoTools builds the pinned Go tools when one is missing or the pins
// changed after it was built.
func installGoTools(ctx context.Context, root string, log *slog.Logger) error {
	bin := BinDir(root)
	sum := filepath.Join(root, "devstack", "tools", "go.sum")
	fresh := true
	for _, t := range goTools {
		if !newerOrEqual(filepath.Join(bin, t), sum) {
			fresh = false
			break
		}
	}
	if fresh {
		return nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return fmt.Errorf("%w: the Go toolchain is required to build the pinned S3, CloudWatch and toxiproxy servers", ErrMissingPrerequisite)
	}
	log.Info("building pinned Go tools (a few minutes on a cold cache)", "bin", bin)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "install", "tool")
	cmd.Dir = filepath.Join(root, "devstack", "tools")
	// kumo's dependency graph names two aws-sdk-go-v2 module versions that the
	// public checksum database does not hold; go.sum still pins their hashes.
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GONOSUMDB=github.com/aws/aws-sdk-go-v2")
	if err := runLogged(cmd, "go install tool in devstack/tools"); err != nil {
		return err
	}
	// go install leaves an up-to-date binary untouched; touch them so the
	// freshness check above holds until the pins change again.
	now := time.Now()
	for _, t := range goTools {
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
