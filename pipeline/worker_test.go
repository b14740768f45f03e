package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/loadtest"
)

var workerBuild struct {
	once      sync.Once
	path, out string
	err       error
}

// workerBinary builds the streamscore command once for the package's tests.
func workerBinary(t *testing.T) string {
	t.Helper()
	workerBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "streamscore-worker-")
		if err != nil {
			workerBuild.err = err
			return
		}
		workerBuild.path = filepath.Join(dir, "streamscore")
		out, err := exec.Command("go", "build", "-o", workerBuild.path, "../cmd/streamscore").CombinedOutput()
		workerBuild.err, workerBuild.out = err, string(out)
	})
	if workerBuild.err != nil {
		t.Fatalf("building streamscore: %v\n%s", workerBuild.err, workerBuild.out)
	}
	return workerBuild.path
}

// worker is a `streamscore run` process on the local stack.
type worker struct {
	cmd  *exec.Cmd
	addr string // its ops endpoint
	log  *syncBuffer
	done chan error
}

func startWorker(t *testing.T, env *devstacktest.Env, cfgPath, id string) *worker {
	t.Helper()
	root, err := devstack.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(workerBinary(t), "run", "--config", cfgPath, "--worker-id", id, "--listen", "127.0.0.1:0")
	cmd.Dir = root
	cmd.Env = os.Environ()
	for _, kv := range env.Endpoints.EnvVars() {
		cmd.Env = append(cmd.Env, kv[0]+"="+kv[1])
	}
	cmd.Env = append(cmd.Env, "AWS_CA_BUNDLE=", "AWS_PROFILE=", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_CONFIG_FILE=/dev/null")
	w := &worker{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = w.log
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = w.log.Write(append(line, '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "operations endpoints up" {
				select {
				case addr <- l.Addr:
				default:
				}
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if w.running() {
			_ = cmd.Process.Kill()
			<-w.done
		}
		if t.Failed() {
			t.Logf("worker %s log (last lines):\n%s", id, lastLogLines(w.log.String(), 40))
		}
	})
	select {
	case w.addr = <-addr:
	case err := <-w.done:
		w.done <- err
		t.Fatalf("worker exited before serving: %v\n%s", err, w.log.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("worker did not start within 2m:\n%s", w.log.String())
	}
	return w
}

func (w *worker) running() bool {
	select {
	case err := <-w.done:
		w.done <- err
		return false
	default:
		return true
	}
}

// ready polls /readyz until it answers 200.
func (w *worker) ready(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) && w.running() {
		resp, err := http.Get("http://" + w.addr + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("worker not ready within %s (running %v): %s", within, w.running(), last)
}

// stop sends SIGTERM and waits for a clean exit.
func (w *worker) stop(t *testing.T) {
	t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("worker did not stop within 2m of SIGTERM")
	}
}

const hardeningYAML = `pipeline: hardening
consumer:
  application: {{lease}}
  failover_time: 5s
  idle_interval: 100ms
streams:
  - {name: {{stream}}, schema: sensor, shards: 1, max_past_age: 1h}
schemas:
  sensor:
    entity: machine_id
    time: ts
    fields:
      - {name: vibration_rms, type: float64}
windows:
  - name: w1s
    stream: {{stream}}
    kind: tumbling
    size: 1s
    out_of_orderness: 200ms
    idle_timeout: 10s
    features:
      - {name: vibration_mean, agg: mean, field: vibration_rms}
      - {name: readings, agg: count}
models:
  vib:
    format: linear
    path: {{model}}
scorers:
  - {name: failure, window: w1s, model: vib}
sinks:
  s3: {bucket: {{bucket}}, prefix: results/, roll_age: 1s}
  feature_table: {table: {{table}}}
  dead_letter: {queue: {{dlq}}, bucket: {{bucket}}}
alerts:
  topic: {{topic}}
  rules:
    - {name: hot, scorer: failure, threshold: 0.5, severity: critical, fire_after: 1, cooldown: 1h}
ops:
  status_interval: 0s
  log_format: json
`

// TestWorkerSurvivesBadRecords sends a real `streamscore run` worker the
// records real fleets send by mistake, then good records on the same shard:
// every bad record becomes a dead letter whose reason names the problem,
// every good record is counted in a scored window, the worker never exits
// or turns unready, and its checkpoint moves past the bad records.
func TestWorkerSurvivesBadRecords(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t) // fresh stream, bucket, table, queues
	env := tp.env
	ctx := devstacktest.Ctx(t)
	stream := env.CreateStream(t, 1) // one shard: the bad and the good share it
	// Kinesis takes records up to 10 MiB once a stream allows them.
	sum, err := env.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kinesis.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{
		StreamARN: sum.StreamDescriptionSummary.StreamARN, MaxRecordSizeInKiB: aws.Int32(2048)}); err != nil {
		t.Fatal(err)
	}
	cfgPath := tp.workerConfig(t, stream)
	w := startWorker(t, env, cfgPath, "hardening-worker")
	w.ready(t, time.Minute)

	put := func(key string, data []byte) string {
		t.Helper()
		out, err := env.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(key), Data: data})
		if err != nil {
			t.Fatalf("putting a %d-byte record: %v", len(data), err)
		}
		return aws.ToString(out.SequenceNumber)
	}
	now := time.Now().UTC()
	rec := func(entity string, ts time.Time, vib float64) []byte {
		return fmt.Appendf(nil, `{"machine_id":%q,"ts":%q,"vibration_rms":%g}`, entity, ts.Format(time.RFC3339Nano), vib)
	}
	// The dead letters they must become: reason, and words the detail holds.
	type want struct{ reason, detail string }
	bad := map[string]want{}
	bad[put("m", rec("press-001", now.AddDate(50, 0, 0), 0.3))] = want{"event-time", `"ts"`}   // a clock 50 years fast
	bad[put("m", rec("press-001", now.AddDate(0, 0, -2), 0.3))] = want{"event-time", "behind"} // beyond max_past_age
	bad[put("m", rec("", now, 0.3))] = want{"entity", `"machine_id"`}
	bad[put("m", rec(strings.Repeat("x", 3000), now, 0.3))] = want{"entity", `"machine_id"`}
	junk := bytes.Repeat([]byte("\x00not json"), 1_200_000/9)
	bad[put("m", junk)] = want{"undecodable", "JSON"}

	// Then good readings on the same shard, starting a second ago: one odd
	// but legitimate id among them.
	machines := []string{"press-001", "press 17 ñ東京", "press-003"}
	t0 := now.Add(-time.Second).Truncate(time.Second)
	good := 0
	var lastSeq string
	for step := range 20 {
		for _, m := range machines {
			lastSeq = put("m", rec(m, t0.Add(time.Duration(step)*100*time.Millisecond), 0.3))
			good++
		}
	}

	// Every good reading is counted in a final window row.
	deadline := time.Now().Add(2 * time.Minute)
	counted := 0.0
	for time.Now().Before(deadline) && w.running() {
		got, _, err := loadtest.ReadResults(ctx, env.S3, tp.bucket, "results/", "readings")
		if err != nil {
			t.Fatal(err)
		}
		entities := map[string]bool{}
		_, counted = latestRows(got)
		for _, r := range got {
			entities[r.Entity] = true
		}
		if int(counted) >= good && entities["press 17 ñ東京"] {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if int(counted) != good {
		t.Fatalf("S3 rows count %v readings, %d good readings were sent", counted, good)
	}

	// Every bad record is a dead letter with its reason.
	letters := receiveLetters(t, env, tp.dlqURL, len(bad))
	for _, l := range letters {
		wt, ok := bad[l.seq]
		if !ok {
			t.Errorf("unexpected dead letter %+v", l)
			continue
		}
		delete(bad, l.seq)
		if l.reason != wt.reason || !strings.Contains(l.detail, wt.detail) {
			t.Errorf("record %s: dead letter %q %q, want reason %q with %q in the detail", l.seq, l.reason, l.detail, wt.reason, wt.detail)
		}
	}
	for seq, wt := range bad {
		t.Errorf("record %s (%s) is not a dead letter", seq, wt.reason)
	}

	if !w.running() {
		t.Fatal("the worker exited")
	}
	w.ready(t, 10*time.Second)
	w.stop(t)
	cps := checkpoints(t, env, tp.leaseTable)
	if len(cps) != 1 {
		t.Fatalf("checkpoints %v, want one shard's", cps)
	}
	for shard, cp := range cps {
		if cp != lastSeq {
			t.Errorf("shard %s checkpointed at %q, want the last record %q: the bad records must not hold it back", shard, cp, lastSeq)
		}
	}
}

// workerConfig writes hardeningYAML for stream onto tp's resources (its
// bucket, tables, queues and model) and returns the file's path.
func (tp *testPipeline) workerConfig(t *testing.T, stream string) string {
	t.Helper()
	topic, _ := tp.env.CreateTopicQueue(t, false)
	yaml := strings.NewReplacer("{{lease}}", tp.leaseTable, "{{stream}}", stream, "{{model}}", tp.cfg.Models["vib"].Path,
		"{{bucket}}", tp.bucket, "{{table}}", tp.table, "{{dlq}}", tp.dlqURL, "{{topic}}", topic).Replace(hardeningYAML)
	path := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type letter struct{ seq, reason, detail string }

func receiveLetters(t *testing.T, env *devstacktest.Env, url string, want int) []letter {
	t.Helper()
	var out []letter
	deadline := time.Now().Add(time.Minute)
	for len(out) < want && time.Now().Before(deadline) {
		m, err := env.SQS.ReceiveMessage(devstacktest.Ctx(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range m.Messages {
			a := func(k string) string { return aws.ToString(msg.MessageAttributes[k].StringValue) }
			out = append(out, letter{seq: a("sequence_number"), reason: a("reason"), detail: a("detail")})
		}
	}
	return out
}

// The worker config closes windows on processing time only after 10 s of
// silence: a producer stalled on a loaded machine for the 2 s the other
// tests use would close a window early, its later readings would be late,
// and a replay's complete row would lose to that first, partial one.

// TestPausedWorkerNeverOverwritesTheNewOwner stops a worker with SIGSTOP
// while it holds the leases and has results in flight, lets another worker
// take over, then wakes it up: in the end every window has a final row (by
// the readers' rule) with exactly the readings sent, every shard's
// checkpoint is its last record, and the woken worker reports losing its
// leases. It holds with or without Checkpointer.Expired (the woken worker
// reads the same records and computes the same windows, and its later rows
// lose to the first); the check spares the duplicate writes.
func TestPausedWorkerNeverOverwritesTheNewOwner(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	env := tp.env
	cfgPath := tp.workerConfig(t, tp.stream)
	a := startWorker(t, env, cfgPath, "worker-a")
	a.ready(t, time.Minute)
	b := startWorker(t, env, cfgPath, "worker-b")

	machines := []string{"press-001", "press-002", "press-003", "press-004", "press-005", "press-006"}
	sent := map[string]float64{} // machine + window start -> readings
	var mu sync.Mutex
	// A live fleet: readings stamped when they are sent, so no shard sees
	// its event time go back (a late reading would be dead-lettered and
	// counted nowhere), paced a little so they span several windows. Every
	// call has its own deadline: under load the test outlasts a single one.
	call := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return ctx
	}
	send := func(steps int) {
		for range steps {
			ts := time.Now().UTC()
			for _, m := range machines {
				if _, err := env.Kinesis.PutRecord(call(), &kinesis.PutRecordInput{StreamName: aws.String(tp.stream),
					PartitionKey: aws.String(m), Data: []byte(reading(m, ts, 0.3))}); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				sent[windowKey(m, ts.Truncate(time.Second))]++
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond) // pacing the producer, not synchronisation
		}
	}
	counted := func(within time.Duration) map[string]float64 {
		t.Helper()
		mu.Lock()
		want := maps.Clone(sent)
		mu.Unlock()
		got, _ := waitCounts(t, tp, within, countsAtLeast(want))
		return got
	}

	send(20)
	counted(time.Minute)

	// Pause A with results in flight: readings of windows still open.
	send(10)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	// B takes the leases over once A's expire, and carries on.
	send(20)
	b.ready(t, time.Minute)
	counted(2 * time.Minute)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	paused = false
	send(20)
	got := counted(2 * time.Minute)

	for k, want := range sent {
		if got[k] != want {
			t.Errorf("window %s: final rows count %v readings, %v were sent", k, got[k], want)
		}
	}
	if !a.running() || !b.running() {
		t.Fatal("a worker exited")
	}
	a.stop(t)
	b.stop(t)
	last := lastSequences(t, env, tp.stream)
	cps := checkpoints(t, env, tp.leaseTable)
	for shard, seq := range last {
		if cps[shard] != seq {
			t.Errorf("shard %s checkpointed at %q, its last record is %q", shard, cps[shard], seq)
		}
	}
	if !strings.Contains(a.log.String(), "lease") || !strings.Contains(a.log.String(), "expired") && !strings.Contains(a.log.String(), "lost") {
		t.Errorf("the woken worker did not report losing its leases:\n%s", lastLogLines(a.log.String(), 30))
	}
}
