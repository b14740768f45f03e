package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// binary builds the streamscore command once per test run, so tests drive it
// exactly as a user does.
func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "streamscore-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "streamscore")
		out, err := exec.Command("go", "build", "-o", build.path, ".").CombinedOutput()
		if err != nil {
			build.err = err
			build.path = string(out)
		}
	})
	if build.err != nil {
		t.Fatalf("building streamscore: %v\n%s", build.err, build.path)
	}
	return build.path
}

func TestMain(m *testing.M) {
	// devstacktest.Main stops the private stack a test started.
	code := devstacktest.Main(m)
	if build.path != "" {
		os.RemoveAll(filepath.Dir(build.path))
	}
	os.Exit(code)
}

func run(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = "../.." // the repository root, as a user runs it
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestConfigValidate(t *testing.T) {
	out, _, err := run(t, nil, "config", "validate", "examples/factory.yaml", "examples/churn.yaml")
	if err != nil {
		t.Fatalf("validate of the examples failed: %v", err)
	}
	if strings.Count(out, ": ok") != 2 {
		t.Errorf("output = %q", out)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	src, _ := os.ReadFile("../../examples/factory.yaml")
	at := bytes.Index(src, []byte("    size: 5m\n"))
	if at < 0 {
		t.Fatal("examples/factory.yaml no longer has a 5m window size to break")
	}
	line := bytes.Count(src[:at], []byte("\n")) + 1
	src = bytes.Replace(src, []byte("    size: 5m\n"), []byte("    size: 5 minutes\n"), 1)
	if err := os.WriteFile(bad, src, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := run(t, nil, "config", "validate", bad)
	if err == nil {
		t.Fatal("validate accepted a bad duration")
	}
	if want := fmt.Sprintf("%s:%d: windows[0].size: invalid duration \"5 minutes\"", bad, line); !strings.Contains(errOut, want) {
		t.Errorf("stderr = %q, want file:line: key: problem", errOut)
	}
}

// TestDevUpEnvAWSCLIDown is the developer's first five minutes: start the
// stack with the example configs, point the AWS CLI at it with dev env, see
// the streams, and stop it leaving no process behind.
func TestDevUpEnvAWSCLIDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole local stack")
	}
	awsCLI := "/usr/bin/aws"
	if _, err := os.Stat(awsCLI); err != nil {
		t.Fatalf("this test drives the Debian AWS CLI at %s (apt-get install awscli): %v", awsCLI, err)
	}
	dir := t.TempDir()
	_, errOut, err := run(t, nil, "dev", "up", "--dir", dir, "--config", "examples/factory.yaml", "--config", "examples/churn.yaml")
	if err != nil {
		t.Fatalf("dev up: %v\n%s", err, errOut)
	}
	st, err := devstack.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Down(t.Context()) })

	envOut, _, err := run(t, nil, "dev", "env", "--dir", dir)
	if err != nil {
		t.Fatalf("dev env: %v", err)
	}
	// eval "$(streamscore dev env)" && aws kinesis list-streams, in one shell.
	sh := exec.Command("bash", "-c", envOut+"\n"+awsCLI+" kinesis list-streams --output json")
	sh.Env = os.Environ()
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("aws kinesis list-streams after dev env: %v\n%s", err, out)
	}
	var streams struct{ StreamNames []string }
	if err := json.Unmarshal(out, &streams); err != nil {
		t.Fatalf("aws output %q: %v", out, err)
	}
	for _, want := range []string{"factory-sensors", "app-events"} {
		if !slices.Contains(streams.StreamNames, want) {
			t.Errorf("aws kinesis list-streams = %v, missing %s", streams.StreamNames, want)
		}
	}

	statusOut, _, err := run(t, nil, "dev", "status", "--dir", dir)
	if err != nil || strings.Count(statusOut, " ok ") != len(devstack.AllServices()) {
		t.Errorf("dev status: %v\n%s", err, statusOut)
	}

	if _, errOut, err := run(t, nil, "dev", "down", "--dir", dir); err != nil {
		t.Fatalf("dev down: %v\n%s", err, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range st.Procs {
		for alive(p.PID) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(p.PID) {
			t.Errorf("%s (pid %d) still runs after dev down", p.Service, p.PID)
		}
	}
	if _, err := devstack.Load(dir); err == nil {
		t.Error("dev down left the state file behind")
	}
}

// alive reports whether pid runs and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}
