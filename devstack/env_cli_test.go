package devstack_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// TestDevEnvAWSCLIs is what a developer does after `streamscore dev up`:
// eval the output of `streamscore dev env` in bash and call the AWS CLI. It
// runs with every distinct AWS CLI v1 and v2 it can find, because the two
// load the endpoint plugin differently (a config that works for one broke
// the other), and fails when either major version is missing.
func TestDevEnvAWSCLIs(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	clis := findAWSCLIs(ctx, t, root)
	if len(clis[1]) == 0 {
		t.Errorf("no AWS CLI v1 found (looked at every aws on PATH, pyenv's and .devstack/awscli-v1): install one with bash devstack/awscli/install-v1.sh")
	}
	if len(clis[2]) == 0 {
		t.Errorf("no AWS CLI v2 found (looked at every aws on PATH and /usr/bin/aws): install Debian's with apt-get install awscli (make deps does)")
	}
	if t.Failed() {
		return
	}

	stream := env.CreateStream(t, 1)
	bucket := env.CreateBucket(t)
	table := env.Name("t-" + t.Name())
	if err := devstack.EnsureTable(ctx, env.DynamoDB, devstack.TablePlan{Name: table, HashKey: "k"}); err != nil {
		t.Fatal(err)
	}

	// A state of its own, so the test does not rewrite the shared stack's
	// aws-config under a developer who uses it.
	st := &devstack.State{Dir: t.TempDir(), Endpoints: env.Endpoints}
	lines, err := st.EnvLines(root)
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "env.sh")
	if err := os.WriteFile(envFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	calls := []struct {
		args []string
		want string
	}{
		{[]string{"kinesis", "list-streams"}, stream},
		{[]string{"dynamodb", "list-tables"}, table},
		{[]string{"s3", "ls"}, bucket},
	}
	for _, major := range []int{1, 2} {
		for _, cli := range clis[major] {
			t.Run(strings.ReplaceAll(cli.version, "/", "-"), func(t *testing.T) {
				for _, c := range calls {
					// Exactly what the help text tells users to run, with
					// the stack's variables on top of the caller's own.
					script := `eval "$(cat "$1")" && shift && exec "$@"`
					args := append([]string{"-c", script, "bash", envFile, cli.path}, c.args...)
					cmd := exec.CommandContext(ctx, "bash", args...)
					var stdout, stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					if err := cmd.Run(); err != nil {
						t.Errorf("aws %s with %s: %v\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), cli.path, err, stdout.String(), stderr.String())
						continue
					}
					if !strings.Contains(stdout.String(), c.want) {
						t.Errorf("aws %s with %s does not list %s:\n%s", strings.Join(c.args, " "), cli.path, c.want, stdout.String())
					}
				}
			})
		}
	}
}

type awsCLI struct {
	path    string
	version string // as `aws --version` prints it, e.g. "aws-cli/1.45.11"
}

var awsCLIVersion = regexp.MustCompile(`aws-cli/(\d+)\.\d+\.\d+`)

// findAWSCLIs returns the distinct AWS CLIs on this machine by major
// version: every aws on PATH, Debian's, pyenv's and the one
// devstack/awscli/install-v1.sh installs. Two paths running the same
// version (a pyenv shim and its target) count once.
func findAWSCLIs(ctx context.Context, t *testing.T, root string) map[int][]awsCLI {
	t.Helper()
	var candidates []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir != "" {
			candidates = append(candidates, filepath.Join(dir, "aws"))
		}
	}
	candidates = append(candidates, "/usr/bin/aws", filepath.Join(root, ".devstack", "awscli-v1", "bin", "aws"))
	pyenv := os.Getenv("PYENV_ROOT")
	if home, err := os.UserHomeDir(); pyenv == "" && err == nil {
		pyenv = filepath.Join(home, ".pyenv")
	}
	if pyenv != "" {
		found, _ := filepath.Glob(filepath.Join(pyenv, "versions", "*", "bin", "aws"))
		candidates = append(candidates, found...)
	}

	clis := map[int][]awsCLI{}
	seenPath, seenVersion := map[string]bool{}, map[string]bool{}
	for _, p := range candidates {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seenPath[real] {
			continue
		}
		seenPath[real] = true
		if fi, err := os.Stat(real); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		out, err := exec.CommandContext(ctx, p, "--version").CombinedOutput()
		m := awsCLIVersion.FindSubmatch(out)
		if err != nil || m == nil {
			t.Logf("skipping %s: aws --version: %v: %s", p, err, out)
			continue
		}
		version := string(m[0])
		if seenVersion[version] {
			continue
		}
		seenVersion[version] = true
		major, _ := strconv.Atoi(string(m[1]))
		t.Logf("found %s at %s", version, p)
		clis[major] = append(clis[major], awsCLI{path: p, version: version})
	}
	return clis
}
