package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

const reviewConfig = `pipeline: p
streams:
  - {name: s, schema: sensor}
  - {name: LABELS, schema: label}
schemas:
  sensor:
    entity: machine_id
    time: ts
    fields:
      - {name: vibration_rms, type: float64}
  label:
    entity: machine_id
    time: ts
    time_format: epoch_ms
    fields:
      - {name: failed, type: int64}
      - {name: result_id, type: string}
windows:
  - {name: w, stream: s, kind: tumbling, size: 1m, features: [{name: vib_mean, agg: mean, field: vibration_rms}]}
models:
  m: {format: linear, path: examples/models/factory-demo.json}
scorers:
  - {name: sc, window: w, model: m}
sinks:
  s3: {bucket: b}
labels: {stream: LABELS, label: failed, inference_id: result_id}
alerts:
  topic: t
  rules:
    - {name: failure-risk, scorer: sc, threshold: 0.9, severity: critical}
  review:
    link: "http://127.0.0.1:8088/review?result_id={result_id}&entity={entity}&window_end={window_end}"
`

// TestReviewVerdict drives `streamscore review verdict` as a user does,
// against the local stack's Kinesis: the verdict is one record on the
// labels stream in its schema (epoch milliseconds, an int64 label), and a
// bad value is refused naming its flag, writing nothing.
func TestReviewVerdict(t *testing.T) {
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	cfgPath := filepath.Join(t.TempDir(), "review.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(reviewConfig, "LABELS", stream)), 0o644); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, kv := range env.Endpoints.EnvVars() {
		vars = append(vars, kv[0]+"="+kv[1])
	}
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	args := []string{"review", "verdict", "--config", cfgPath, "--result-id", "5F0E4C1A9B7D2E38C6A1F04B9E3D7C21", "--entity", "press-001",
		"--time", at.Format(time.RFC3339Nano), "--reviewer", "ana"}
	out, errOut, err := run(t, vars, append(args, "--label", "1")...)
	if err != nil || !strings.Contains(out, "verdict 1 on 5F0E4C1A9B7D2E38C6A1F04B9E3D7C21 put on "+stream+": shard shardId-000000000000, sequence ") {
		t.Fatalf("review verdict: %v\n%s%s", err, out, errOut)
	}
	for _, tc := range []struct{ flag, value, want string }{
		{"--label", "0.5", "--label: 0.5: the labels schema's field is an int64: want a whole number"},
		{"--label", "yes", `--label "yes": want 1 (confirmed), 0 (false alarm) or a number`},
		{"--result-id", "nothex", `--result-id: "nothex" is not a result_id`},
	} {
		a := append(append([]string{}, args...), "--label", "1")
		if tc.flag == "--label" {
			a[len(a)-1] = tc.value
		} else {
			a = append(a, tc.flag, tc.value)
		}
		if out, errOut, err := run(t, vars, a...); err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("review verdict %s %s: %v, want %q\n%s%s", tc.flag, tc.value, err, tc.want, out, errOut)
		}
	}

	ctx := devstacktest.Ctx(t)
	it, err := env.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var recs []ktypes.Record
	iter := it.ShardIterator
	for range 5 { // a page may come back empty before the end
		res, err := env.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		recs, iter = append(recs, res.Records...), res.NextShardIterator
		if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
			break
		}
	}
	want := fmt.Sprintf(`{"machine_id":"press-001","ts":%d,"failed":1,"result_id":"5f0e4c1a9b7d2e38c6a1f04b9e3d7c21","reviewer":"ana"}`, at.UnixMilli())
	if len(recs) != 1 || string(recs[0].Data) != want || aws.ToString(recs[0].PartitionKey) != "press-001" {
		for _, r := range recs {
			t.Logf("record %s key %s", r.Data, aws.ToString(r.PartitionKey))
		}
		t.Fatalf("%d records, want the one verdict %s", len(recs), want)
	}
}
