package pipeline_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
)

const labelsYAML = `pipeline: labels-test
consumer:
  application: {{lease}}
  failover_time: 3s
  idle_interval: 100ms
streams:
  - {name: {{stream}}, schema: label, shards: 1}
schemas:
  label:
    entity: machine_id
    time: ts
    fields:
      - {name: failed, type: string}
      - {name: result_id, type: string}
sinks:
  s3: {bucket: {{bucket}}, roll_age: 1s}
  dead_letter: {queue: {{dlq}}}
labels:
  stream: {{stream}}
  label: failed
  inference_id: result_id
ops:
  status_interval: 0s
  log_format: json
`

// TestLabelsStreamToGroundTruth runs real `streamscore run` workers on a
// labels stream. Good labels (one sent twice), labels of two event hours
// and poison records: the ground truth in S3 is one file per hour with
// exactly the lines the format promises (the duplicate twice), every
// poison record is a dead letter whose reason names the problem, and the
// checkpoint reaches the last record. Then S3 goes away: the worker reads
// and retries new labels but checkpoints nothing past what is in S3; it
// is killed, and a second worker takes the shard over, replays from the
// checkpoint and writes the labels the first never could.
func TestLabelsStreamToGroundTruth(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	stream, bucket, dlq, lease := env.CreateStream(t, 1), env.CreateBucket(t), env.CreateQueue(t, false), env.Name("leases")
	src := strings.NewReplacer("{{lease}}", lease, "{{stream}}", stream, "{{bucket}}", bucket, "{{dlq}}", dlq).Replace(labelsYAML)
	if _, err := config.Parse([]byte(src), "labels.yaml"); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "labels.yaml")
	if err := os.WriteFile(cfgPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := sinks.GroundTruthPrefix("labels-test", "")

	var seqs []string
	put := func(data string) string {
		t.Helper()
		out, err := env.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
		return seqs[len(seqs)-1]
	}
	// The hour that began before this one, and the one before it.
	h := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	stamp := func(d time.Duration) string { return h.Add(d).Format(time.RFC3339Nano) }
	const idA, idB, idC = "5F0E4C1A9B7D2E38C6A1F04B9E3D7C21", "aa0e4c1a9b7d2e38c6a1f04b9e3d7cff", "0b0e4c1a9b7d2e38c6a1f04b9e3d7c00"
	good := fmt.Sprintf(`{"machine_id":"m-1","ts":%q,"failed":"TRUE","result_id":%q}`, stamp(-time.Millisecond), idA)
	put(good)
	put(good) // a duplicate: written twice, the reader keeps one
	type want struct{ reason, detail string }
	bad := map[string]want{}
	bad[put(`{"machine_id":"m-9","ts":`)] = want{sinks.ReasonUndecodable, "JSON"}
	bad[put(`{"machine_id":"m-9","failed":"1"}`)] = want{sinks.ReasonUndecodable, `"ts"`}
	put(fmt.Sprintf(`{"machine_id":"m-2","ts":%q,"failed":" false "}`, stamp(123*time.Millisecond)))
	bad[put(fmt.Sprintf(`{"machine_id":"m-9","ts":%q,"failed":"maybe"}`, stamp(0)))] = want{sinks.ReasonBadLabel, `label field "failed": "maybe" is not a number`}
	bad[put(fmt.Sprintf(`{"machine_id":"m-9","ts":%q,"failed":null,"result_id":%q}`, stamp(0), idB))] = want{sinks.ReasonBadLabel, "missing or null"}
	bad[put(fmt.Sprintf(`{"machine_id":"m-9","ts":%q,"failed":"1","result_id":"xyz"}`, stamp(0)))] = want{sinks.ReasonBadInferenceID, `inference id field "result_id": "xyz" is not a result_id`}
	last1 := put(fmt.Sprintf(`{"machine_id":"m-3","ts":%q,"failed":"0.50","result_id":%q}`, stamp(30*time.Minute), idB))

	// Worker A writes to S3 through a proxy this test can cut.
	proxy := env.Proxy(t, env.Endpoints.S3)
	throughProxy := *env
	throughProxy.Endpoints.S3 = proxy.URL()
	a := startWorker(t, &throughProxy, cfgPath, "labels-a")

	line := func(entity string, at time.Duration, data, id string) string {
		return fmt.Sprintf(`{"groundTruthData":{"data":%q,"encoding":"CSV"},"eventMetadata":{"eventId":%q},"eventVersion":"0","streamscore":{"entity":%q,"time":%q}}`,
			data, strings.ToLower(id), entity, h.Add(at).Format("2006-01-02T15:04:05.000Z"))
	}
	early, late := sinks.GroundTruthHourPrefix(prefix, h.Add(-time.Hour)), sinks.GroundTruthHourPrefix(prefix, h)
	want1 := map[string][]string{
		early: {line("m-1", -time.Millisecond, "1", idA), line("m-1", -time.Millisecond, "1", idA)},
		late:  {line("m-2", 123*time.Millisecond, "0", ""), line("m-3", 30*time.Minute, "0.5", idB)},
	}
	got := waitGroundTruth(t, env.S3, bucket, prefix, 4, 2*time.Minute)
	checkGroundTruth(t, got, want1, seqs)

	letters := receiveLetters(t, env, dlq, len(bad))
	for _, l := range letters {
		w, ok := bad[l.seq]
		if !ok {
			t.Errorf("unexpected dead letter %+v", l)
			continue
		}
		delete(bad, l.seq)
		if l.reason != w.reason || !strings.Contains(l.detail, w.detail) {
			t.Errorf("record %s: dead letter %q %q, want reason %q with %q in the detail", l.seq, l.reason, l.detail, w.reason, w.detail)
		}
	}
	for seq, w := range bad {
		t.Errorf("record %s (%s) is not a dead letter", seq, w.reason)
	}
	waitCheckpoint(t, env, lease, last1, time.Minute)

	// S3 goes away. A reads the next label and retries its upload, but
	// the checkpoint stays on the last label in S3.
	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	last2 := put(fmt.Sprintf(`{"machine_id":"m-4","ts":%q,"failed":"1","result_id":%q}`, stamp(40*time.Minute), idC))
	deadline := time.Now().Add(2 * time.Minute)
	for a.metric(t, "streamscore_sink_retries_total", `sink="groundtruth"`) < 3 {
		if time.Now().After(deadline) || !a.running() {
			t.Fatalf("worker A (running %v) counted no retries of the ground truth 2m into the outage", a.running())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cp := checkpoints(t, env, lease); len(cp) != 1 || firstValue(cp) != last1 {
		t.Fatalf("checkpoints %v during the outage, want the last record in S3, %s", cp, last1)
	}
	if got := groundTruth(t, env.S3, bucket, prefix); lineCount(got) != 4 {
		t.Fatalf("%d lines in S3 during the outage, want the 4 written before it", lineCount(got))
	}

	// A dies with the label unwritten; B takes the shard over once A's
	// lease expires and writes it.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.done <- <-a.done // its cleanup reads the exit again
	b := startWorker(t, env, cfgPath, "labels-b")
	want2 := map[string][]string{early: want1[early], late: append(slices.Clone(want1[late]), line("m-4", 40*time.Minute, "1", idC))}
	got = waitGroundTruth(t, env.S3, bucket, prefix, 5, 2*time.Minute)
	checkGroundTruth(t, got, want2, seqs)
	if n := b.metric(t, "streamscore_sink_rows_total", `sink="groundtruth"`); n != 1 {
		t.Errorf("worker B made %v labels durable, want the 1 after the checkpoint", n)
	}
	b.stop(t)
	if cp := checkpoints(t, env, lease); firstValue(cp) != last2 {
		t.Errorf("checkpoints %v after B stopped, want the last record %s", cp, last2)
	}
}

func firstValue(m map[string]string) string {
	for _, v := range m {
		return v
	}
	return ""
}

// groundTruth reads every object under prefix: key -> content.
func groundTruth(t *testing.T, c *s3.Client, bucket, prefix string) map[string]string {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	out := map[string]string{}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(get.Body)
		get.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[aws.ToString(o.Key)] = string(b)
	}
	return out
}

func lineCount(objs map[string]string) int {
	n := 0
	for _, v := range objs {
		n += strings.Count(v, "\n")
	}
	return n
}

func waitGroundTruth(t *testing.T, c *s3.Client, bucket, prefix string, lines int, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := groundTruth(t, c, bucket, prefix)
		if lineCount(got) >= lines || time.Now().After(deadline) {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkGroundTruth compares the objects with the lines wanted per hour
// prefix (in any file of the hour, in order within a file), and checks
// each key's name: <hour>/<shard>_<first>_<last>.jsonl, the roll's first
// and last positions being records of the stream.
func checkGroundTruth(t *testing.T, got map[string]string, want map[string][]string, seqs []string) {
	t.Helper()
	lines := map[string][]string{}
	for key, body := range got {
		dir, name := key[:strings.LastIndex(key, "/")+1], key[strings.LastIndex(key, "/")+1:]
		if _, ok := want[dir]; !ok {
			t.Errorf("object %s is in no hour that holds labels", key)
			continue
		}
		parts := strings.Split(strings.TrimSuffix(name, ".jsonl"), "_")
		if len(parts) != 3 || !strings.HasPrefix(parts[0], "shardId-") || !strings.HasSuffix(name, ".jsonl") {
			t.Errorf("object %s: want <hour>/<shard>_<first>_<last>.jsonl", key)
			continue
		}
		var ends [2]shardpos.Position
		for i, p := range parts[1:] {
			seq, sub, ok := strings.Cut(p, ".")
			n, err := strconv.ParseUint(sub, 10, 64)
			if !ok || err != nil || !slices.Contains(seqs, seq) {
				t.Errorf("object %s: %q is not the position of a record put", key, p)
			}
			ends[i] = shardpos.Position{Sequence: seq, SubSequence: n}
		}
		if ends[0].Compare(ends[1]) > 0 {
			t.Errorf("object %s: its range runs backwards", key)
		}
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			lines[dir] = append(lines[dir], sc.Text())
		}
		if !strings.HasSuffix(body, "\n") {
			t.Errorf("object %s does not end its last line", key)
		}
	}
	for dir, w := range want {
		g := slices.Clone(lines[dir])
		w = slices.Clone(w)
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("hour %s holds\n%s\nwant\n%s", dir, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
}

func waitCheckpoint(t *testing.T, env *devstacktest.Env, table, seq string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		cp := checkpoints(t, env, table)
		if firstValue(cp) == seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoints %v after %s, want %s", cp, within, seq)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metric sums the worker's series of a Prometheus counter whose labels
// include match.
func (w *worker) metric(t *testing.T, name, match string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + w.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") || !strings.Contains(l, match) {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}
