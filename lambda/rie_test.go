package lambda

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// The function runs under the Lambda Runtime Interface Emulator exactly as
// it is deployed: the bootstrap binary built for provided.al2023, the
// runtime API, the environment variables, AWS_ENDPOINT_URL_* pointing at
// the local stack.

// bootstrapBuild is the binary built once for this test binary.
var bootstrapBuild struct {
	once sync.Once
	dir  string
	err  error
}

// buildBootstrap builds lambda/bootstrap with the deployment's command
// (docs/lambda.md) and returns its path.
func buildBootstrap(t testing.TB) string {
	t.Helper()
	rieBinary(t) // skipped under -short, fatal if missing: before a build for nothing
	b := &bootstrapBuild
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "streamscore-lambda-")
		if b.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", filepath.Join(b.dir, "bootstrap"), "./bootstrap")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./lambda/bootstrap: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return filepath.Join(b.dir, "bootstrap")
}

// rieBinary is the emulator `streamscore dev install` builds. Its absence
// fails the test: a skipped end-to-end test proves nothing.
func rieBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs the Lambda Runtime Interface Emulator (run without -short)")
	}
	p, err := filepath.Abs("../.devstack/bin/aws-lambda-rie")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the Lambda Runtime Interface Emulator is not installed (%v): run `bin/streamscore dev install` (make tools)", err)
	}
	return p
}

// freePort finds a free loopback port below 32768 (the kernel hands out
// ports above it for outgoing connections, which could take it).
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free port below 32768")
	return 0
}

// rie is a running emulator with the function behind it.
type rie struct {
	url    string
	out    *lockedBuffer // the emulator's and the function's output
	cmd    *exec.Cmd
	client *http.Client
}

// startRIE runs bootstrap under the emulator with exactly env (nothing
// from the developer's environment leaks in).
func startRIE(t testing.TB, bootstrap string, env []string) *rie {
	t.Helper()
	emu := rieBinary(t)
	port, apiPort := freePort(t), freePort(t)
	for apiPort == port {
		apiPort = freePort(t)
	}
	// Both addresses, always: any other argument is taken as the handler
	// and the emulator would listen on 0.0.0.0:8080.
	cmd := exec.Command(emu,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap) // /var/task in Lambda
	cmd.Env = env
	r := &rie{url: fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port), out: &lockedBuffer{}, cmd: cmd,
		client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 60 * time.Second}}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	// Its own process group, so stopping it stops the function too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator did not listen on %d: %v\n%s", port, err, r.out.Bytes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

func (r *rie) stop() {
	if r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	_ = r.cmd.Wait()
}

// invoke posts a payload as Lambda's Invoke API would and returns the body.
// Handler errors come back as 200 too: the body says errorType.
func (r *rie) invoke(t testing.TB, payload []byte) (int, []byte) {
	t.Helper()
	resp, err := r.client.Post(r.url, "application/json", bytes.NewReader(payload))
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, r.out.Bytes())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// initDurations are the emulator's measurements of each init phase (the
// function's cold starts), in milliseconds.
func (r *rie) initDurations() []float64 {
	var out []float64
	for _, m := range initReport.FindAllSubmatch(r.out.Bytes(), -1) {
		if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// functionEnv is the function's environment against the local stack.
func functionEnv(f *fixture, vars map[string]string) []string {
	var env []string
	for _, kv := range f.env.Endpoints.EnvVars() {
		env = append(env, kv[0]+"="+kv[1])
	}
	// Nothing from a developer's AWS files: only what is set here.
	env = append(env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_LAMBDA_FUNCTION_NAME=login-scorer-e2e", "AWS_LAMBDA_FUNCTION_TIMEOUT=30")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// uploadModel puts the churn model in a bucket and returns its s3:// URI.
func uploadModel(t testing.TB, f *fixture) string {
	t.Helper()
	data, err := os.ReadFile(churnModel)
	if err != nil {
		t.Fatal(err)
	}
	bucket := f.env.CreateBucket(t)
	if _, err := f.env.S3.PutObject(devstacktest.Ctx(t), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("models/churn.json"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	return "s3://" + bucket + "/models/churn.json"
}

// usersNow are testUsers with their window yesterday by the real clock,
// which the binary under the emulator uses.
func usersNow() []user {
	yesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	var out []user
	for _, u := range testUsers {
		if u.entity == "user-stale" {
			continue
		}
		u.ws = yesterday
		out = append(out, u)
	}
	return out
}

// emfOf returns the EMF lines in the emulator's output.
func emfOf(out []byte) [][]byte {
	var lines [][]byte
	for _, l := range bytes.Split(out, []byte("\n")) {
		if bytes.Contains(l, []byte(`"_aws"`)) {
			lines = append(lines, l)
		}
	}
	return lines
}
