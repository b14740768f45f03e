package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Config says where a stack lives and what it runs.
type Config struct {
	// Root is the repository root (see FindRoot): where the pinned servers
	// are installed.
	Root string
	// Dir holds the stack's state file, logs and data. Default: DefaultDir(Root).
	Dir string
	// Services to run. Default: AllServices().
	Services []Service
	// StartTimeout bounds the wait for one server to answer its first API
	// call. kinesis-local took 9.6 s to start on a loaded 2-core machine, so
	// the default is generous: 3 minutes.
	StartTimeout time.Duration
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
	// KinesisServer picks the server that plays Kinesis. Default:
	// KinesisLocal, the most complete; Kinesalite is faster for throughput
	// runs that need no fan-out or resharding.
	KinesisServer KinesisServer
	// S3Server picks the server that plays S3. Default: Versitygw, which
	// checks signatures; S3rver needs no compiling.
	S3Server S3Server
	// DieWithParent kills every server when the process that started it
	// dies, however it dies. A test binary's private stack wants that: a
	// test that panics or is killed must not leave servers behind. `dev up`
	// does not: its servers outlive the command.
	DieWithParent bool
}

// Proc is one running server as recorded in the state file.
type Proc struct {
	Service Service `json:"service"`
	PID     int     `json:"pid"`
	Port    int     `json:"port"`
	Log     string  `json:"log"`
	// Marker is an argument of the server's command line; Down checks it
	// before signalling so that a recycled pid is never killed.
	Marker string `json:"marker"`
}

// State is a running stack, as written to Dir/state.json.
type State struct {
	Dir       string    `json:"dir"`
	Endpoints Endpoints `json:"endpoints"`
	Procs     []Proc    `json:"procs"`
	Started   time.Time `json:"started"`
	// KinesisServer is the server playing Kinesis (empty in state files
	// written before there was a choice: kinesis-local).
	KinesisServer KinesisServer `json:"kinesis_server,omitempty"`
	// S3Server is the server playing S3 (empty in older state files: versitygw).
	S3Server S3Server `json:"s3_server,omitempty"`

	// waits holds the exit channels of servers this process started itself,
	// so Down can reap them (no zombies in a long test binary).
	waits map[int]<-chan error
}

const stateFile = "state.json"

// ErrNotRunning is returned by Load when no stack is recorded in the directory.
var ErrNotRunning = errors.New("devstack: no stack is running here")

// Load reads the state of the stack recorded in dir.
func Load(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", ErrNotRunning, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("devstack: corrupt state file %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.KinesisServer, err = ParseKinesisServer(string(st.KinesisServer)); err != nil {
		return nil, fmt.Errorf("devstack: state file %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.S3Server, err = ParseS3Server(string(st.S3Server)); err != nil {
		return nil, fmt.Errorf("devstack: state file %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// Up installs what is missing, then starts every configured server and waits
// until each answers a real API call. If a healthy stack is already recorded
// in the directory it is returned as it is, so Up is idempotent. On failure
// everything started so far is stopped again and the error carries the tail
// of the failing server's log.
func Up(ctx context.Context, cfg Config) (*State, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir(cfg.Root)
	}
	if len(cfg.Services) == 0 {
		cfg.Services = AllServices()
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 3 * time.Minute
	}
	server, err := ParseKinesisServer(string(cfg.KinesisServer))
	if err != nil {
		return nil, err
	}
	cfg.KinesisServer = server
	if cfg.S3Server, err = ParseS3Server(string(cfg.S3Server)); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if st, err := Load(cfg.Dir); err == nil {
		if err := st.Check(ctx); err == nil {
			if st.runs(Kinesis) && st.KinesisServer != cfg.KinesisServer {
				return nil, fmt.Errorf("devstack: the stack in %s runs %s as Kinesis, not %s: stop it first (streamscore dev down --dir %s)",
					cfg.Dir, st.KinesisServer, cfg.KinesisServer, cfg.Dir)
			}
			if st.runs(S3) && st.S3Server != cfg.S3Server {
				return nil, fmt.Errorf("devstack: the stack in %s runs %s as S3, not %s: stop it first (streamscore dev down --dir %s)",
					cfg.Dir, st.S3Server, cfg.S3Server, cfg.Dir)
			}
			log.Info("stack already running", "dir", cfg.Dir)
			return st, nil
		}
		log.Warn("recorded stack is unhealthy; restarting it", "dir", cfg.Dir)
		_ = st.Down(ctx)
	}
	if err := install(ctx, cfg.Root, log, cfg.goTools()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	st := &State{Dir: cfg.Dir, Started: time.Now().UTC(), waits: map[int]<-chan error{}}
	if slices.Contains(cfg.Services, Kinesis) {
		st.KinesisServer = cfg.KinesisServer
	}
	if slices.Contains(cfg.Services, S3) {
		st.S3Server = cfg.S3Server
	}
	// Start every server first, then wait for all of them: the slow starters
	// warm up in parallel.
	type pending struct {
		spec serverSpec
		proc Proc
	}
	var started []pending
	fail := func(err error) (*State, error) {
		_ = st.Down(context.WithoutCancel(ctx))
		return nil, err
	}
	for _, svc := range cfg.Services {
		spec := specFor(svc, cfg)
		p, err := st.start(ctx, spec, cfg)
		if err != nil {
			return fail(err)
		}
		started = append(started, pending{spec, p})
	}
	for i, pd := range started {
		p, err := st.awaitReady(ctx, pd.spec, pd.proc, cfg)
		if err != nil {
			return fail(err)
		}
		started[i].proc = p
		log.Info("server ready", "service", p.Service, "port", p.Port)
	}
	if err := st.save(); err != nil {
		return fail(err)
	}
	return st, nil
}

// serverSpec describes how to run and probe one server.
type serverSpec struct {
	service Service
	// command builds the command line for the given port.
	command func(port int) (name string, args []string, env []string, dir string)
	marker  string
	// twoPorts: the server listens on port and port+1.
	twoPorts bool
	// ready performs one real API call against the endpoint.
	ready func(ctx context.Context, endpoint string) error
}

func specFor(svc Service, cfg Config) serverSpec {
	node := NodeDir(cfg.Root)
	bin := BinDir(cfg.Root)
	preload := filepath.Join(node, "loopback.js")
	switch svc {
	case Kinesis:
		return kinesisSpec(cfg)
	case DynamoDB:
		return serverSpec{
			service: svc,
			marker:  "dynalite/cli.js",
			command: func(port int) (string, []string, []string, string) {
				return "node", []string{"-r", filepath.Join(node, "client-abort.js"), filepath.Join(node, "node_modules", "dynalite", "cli.js"),
					"--host", "127.0.0.1", "--port", strconv.Itoa(port),
					"--createTableMs", "50", "--updateTableMs", "50", "--deleteTableMs", "50"}, nil, ""
			},
			ready: func(ctx context.Context, ep string) error {
				_, err := Endpoints{DynamoDB: ep}.Clients().DynamoDB.ListTables(ctx, &dynamodb.ListTablesInput{})
				return err
			},
		}
	case S3:
		return s3Spec(cfg)
	case SNSSQS:
		return serverSpec{
			service: svc,
			marker:  "fauxqs/dist/cli.js",
			command: func(port int) (string, []string, []string, string) {
				return "node", []string{"-r", preload, filepath.Join(node, "node_modules", "fauxqs", "dist", "cli.js")},
					[]string{"FAUXQS_PORT=" + strconv.Itoa(port), "FAUXQS_HOST=localhost", "FAUXQS_LOGGER=false"}, ""
			},
			ready: func(ctx context.Context, ep string) error {
				c := Endpoints{SNS: ep, SQS: ep}.Clients()
				if _, err := c.SNS.ListTopics(ctx, &sns.ListTopicsInput{}); err != nil {
					return err
				}
				_, err := c.SQS.ListQueues(ctx, &sqs.ListQueuesInput{})
				return err
			},
		}
	case CloudWatch:
		return serverSpec{
			service: svc,
			marker:  "kumo",
			command: func(port int) (string, []string, []string, string) {
				return filepath.Join(bin, "kumo"), nil,
					[]string{"KUMO_HOST=127.0.0.1", "KUMO_PORT=" + strconv.Itoa(port), "KUMO_LOG_LEVEL=warn"}, ""
			},
			ready: func(ctx context.Context, ep string) error {
				_, err := Endpoints{CloudWatch: ep}.Clients().CloudWatch.ListMetrics(ctx, &cloudwatch.ListMetricsInput{})
				return err
			},
		}
	case Toxiproxy:
		return serverSpec{
			service: svc,
			// toxiproxy's server binary is literally named "server".
			marker: filepath.Join(bin, "server"),
			command: func(port int) (string, []string, []string, string) {
				return filepath.Join(bin, "server"), []string{"-host", "127.0.0.1", "-port", strconv.Itoa(port)}, nil, ""
			},
			ready: func(ctx context.Context, ep string) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/version", nil)
				if err != nil {
					return err
				}
				resp, err := loopbackHTTP.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("toxiproxy /version answered %s", resp.Status)
				}
				return nil
			},
		}
	}
	panic("devstack: no spec for service " + string(svc))
}

// loopbackHTTP never uses a proxy from the environment.
var loopbackHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// start launches one server on a free port in a new session (so it outlives
// `streamscore dev up` and ignores the terminal's Ctrl-C).
func (st *State) start(ctx context.Context, spec serverSpec, cfg Config) (Proc, error) {
	port, err := freePort(spec.twoPorts)
	if err != nil {
		return Proc{}, err
	}
	name, args, env, dir := spec.command(port)
	logPath := filepath.Join(cfg.Dir, "logs", string(spec.service)+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return Proc{}, fmt.Errorf("devstack: %w", err)
	}
	defer logf.Close()
	// Deliberately not CommandContext: the server must outlive ctx.
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(serverEnv(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cfg.DieWithParent {
		// The death signal follows the thread that forked, not the process:
		// fork from a thread that stays alive (an unlocked thread returns
		// to the runtime's pool; only a goroutine that exits locked takes
		// its thread down).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("devstack: starting %s (%s): %w", spec.service, name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	st.waits[cmd.Process.Pid] = done
	p := Proc{Service: spec.service, PID: cmd.Process.Pid, Port: port, Log: logPath, Marker: spec.marker}
	st.Procs = append(st.Procs, p)
	st.setEndpoint(spec.service, fmt.Sprintf("http://127.0.0.1:%d", port))
	return p, nil
}

// awaitReady polls the server's API until it answers, the process exits or
// the timeout passes. A server that died because its port was taken in the
// meantime is started again on another port.
func (st *State) awaitReady(ctx context.Context, spec serverSpec, p Proc, cfg Config) (Proc, error) {
	for attempt := 0; ; attempt++ {
		err := st.poll(ctx, spec, p, cfg.StartTimeout)
		if err == nil {
			return p, nil
		}
		logTail := readTail(p.Log, 30)
		if errors.Is(err, errExited) && attempt < 2 && strings.Contains(strings.ToLower(logTail), "addrinuse") {
			st.forget(p.PID)
			if p, err = st.start(ctx, spec, cfg); err != nil {
				return p, err
			}
			continue
		}
		return p, fmt.Errorf("devstack: %s did not become ready on port %d: %w\n--- last lines of %s ---\n%s", spec.service, p.Port, err, p.Log, logTail)
	}
}

var errExited = errors.New("server exited")

func (st *State) poll(ctx context.Context, spec serverSpec, p Proc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ep := fmt.Sprintf("http://127.0.0.1:%d", p.Port)
	var last error
	for {
		select {
		case err := <-st.waits[p.PID]:
			return fmt.Errorf("%w: %v", errExited, err)
		default:
		}
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		last = spec.ready(callCtx, ep)
		callCancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer within %s: last error: %w", timeout, last)
		case err := <-st.waits[p.PID]:
			return fmt.Errorf("%w: %v", errExited, err)
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// runs reports whether the stack runs the service.
func (st *State) runs(svc Service) bool {
	for _, p := range st.Procs {
		if p.Service == svc {
			return true
		}
	}
	return false
}

func (st *State) forget(pid int) {
	for i, p := range st.Procs {
		if p.PID == pid {
			st.Procs = append(st.Procs[:i], st.Procs[i+1:]...)
			break
		}
	}
	delete(st.waits, pid)
}

func (st *State) setEndpoint(svc Service, url string) {
	switch svc {
	case Kinesis:
		st.Endpoints.Kinesis = url
	case DynamoDB:
		st.Endpoints.DynamoDB = url
	case S3:
		st.Endpoints.S3 = url
	case SNSSQS:
		st.Endpoints.SNS, st.Endpoints.SQS = url, url
	case CloudWatch:
		st.Endpoints.CloudWatch = url
	case Toxiproxy:
		st.Endpoints.Toxiproxy = url
	}
}

func (st *State) save() error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	tmp := filepath.Join(st.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(st.Dir, stateFile)); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// Status is the health of one server.
type Status struct {
	Proc
	Alive bool
	Err   error
}

// Status checks every recorded server: is its process alive and does it
// answer its API?
func (st *State) Status(ctx context.Context) []Status {
	out := make([]Status, 0, len(st.Procs))
	for _, p := range st.Procs {
		s := Status{Proc: p, Alive: p.alive()}
		if !s.Alive {
			s.Err = fmt.Errorf("process %d is not running", p.PID)
		} else {
			callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			s.Err = specFor(p.Service, Config{Root: rootOf(st.Dir), Dir: st.Dir, KinesisServer: st.KinesisServer, S3Server: st.S3Server}).ready(callCtx, fmt.Sprintf("http://127.0.0.1:%d", p.Port))
			cancel()
		}
		out = append(out, s)
	}
	return out
}

// Check returns an error unless every recorded server is alive and answering.
func (st *State) Check(ctx context.Context) error {
	var errs []error
	for _, s := range st.Status(ctx) {
		if s.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Service, s.Err))
		}
	}
	return errors.Join(errs...)
}

// Down stops every recorded server (SIGTERM to its process group, SIGKILL
// after 5 s), waits until none is left and removes the state file.
func (st *State) Down(ctx context.Context) error {
	var errs []error
	for _, p := range st.Procs {
		if err := p.stop(ctx, st.waits[p.PID]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(filepath.Join(st.Dir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// alive reports whether the recorded pid still runs the recorded server.
func (p Proc) alive() bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
	if err != nil {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID)); err == nil {
		// A zombie (state Z) has exited and only waits to be reaped.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return strings.Contains(string(cmdline), p.Marker)
}

func (p Proc) stop(ctx context.Context, reaped <-chan error) error {
	if !p.alive() {
		return nil
	}
	// Each server leads its own session and process group (Setsid), so
	// signalling -pid reaches any child it forked and nothing else.
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if reaped != nil {
			select {
			case <-reaped:
				return nil
			case <-time.After(50 * time.Millisecond):
			}
		} else {
			time.Sleep(50 * time.Millisecond)
		}
		if !p.alive() {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	if reaped != nil {
		select {
		case <-reaped:
		case <-time.After(5 * time.Second):
		}
	}
	for i := 0; i < 100 && p.alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if p.alive() {
		return fmt.Errorf("devstack: %s (pid %d) did not stop", p.Service, p.PID)
	}
	return nil
}

// freePort picks a random free port on 127.0.0.1 below 32768, or two
// adjacent ones (kinesis-local's plain and TLS ports).
func freePort(pair bool) (int, error) {
	for range 200 {
		port := 10000 + rand.IntN(22000)
		if portFree(port) && (!pair || portFree(port+1)) {
			return port, nil
		}
	}
	return 0, errors.New("devstack: no free port found below 32768")
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// serverEnv is the environment servers start with: the caller's, minus
// variables that would point them (or their SDK calls) anywhere but here.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "KINESIS_MOCK_") || strings.HasPrefix(kv, "FAUXQS_") || strings.HasPrefix(kv, "KUMO_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(b, n)
}

// rootOf recovers the repository root from a stack directory, for status
// checks of a stack loaded from disk; it only needs the binary paths, which
// the recorded markers already pin, so a best effort is enough.
func rootOf(dir string) string {
	if r, err := FindRoot(dir); err == nil {
		return r
	}
	return dir
}
