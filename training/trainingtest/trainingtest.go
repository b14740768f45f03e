// Package trainingtest writes the training step's test fixture to the
// local stack's S3: results through the real S3 sink and ground truth as
// JSON Lines, so the training package and the CLI test the same data.
package trainingtest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/retrain"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// result is a row of a result batch: a ten-minute window ending at end,
// with two features.
type result struct {
	entity  string
	end     time.Time
	temp    float64
	n       int64
	version string
	update  bool
	partial string
}

func batch(rows []result) arrow.RecordBatch {
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	f64, str := arrow.PrimitiveTypes.Float64, arrow.BinaryTypes.String
	s := arrow.NewSchema([]arrow.Field{
		{Name: sinks.ColEntity, Type: str},
		{Name: sinks.ColWindowStart, Type: ts},
		{Name: sinks.ColWindowEnd, Type: ts},
		{Name: "temp_mean", Type: f64},
		{Name: "readings", Type: arrow.PrimitiveTypes.Int64},
		{Name: sinks.ColUpdate, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartial, Type: str},
		{Name: windowing.ColOffsetFirst, Type: arrow.PrimitiveTypes.Uint64},
		{Name: windowing.ColOffsetLast, Type: arrow.PrimitiveTypes.Uint64},
		{Name: sinks.ColScore, Type: f64, Nullable: true},
		{Name: sinks.ColModelVersion, Type: str},
		{Name: sinks.ColFallback, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartialID, Type: str, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	for i, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.entity)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r.end.Add(-10 * time.Minute).UnixNano()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(r.end.UnixNano()))
		b.Field(3).(*array.Float64Builder).Append(r.temp)
		b.Field(4).(*array.Int64Builder).Append(r.n)
		b.Field(5).(*array.BooleanBuilder).Append(r.update)
		b.Field(6).(*array.StringBuilder).Append(r.partial)
		b.Field(7).(*array.Uint64Builder).Append(uint64(i))
		b.Field(8).(*array.Uint64Builder).Append(uint64(i))
		b.Field(9).(*array.Float64Builder).Append(0.5)
		b.Field(10).(*array.StringBuilder).Append(r.version)
		b.Field(11).(*array.BooleanBuilder).Append(false)
		if r.partial != "" {
			b.Field(12).(*array.StringBuilder).Append(fmt.Sprintf("shardId-000000000001/%d", i))
		} else {
			b.Field(12).(*array.StringBuilder).AppendNull()
		}
	}
	return b.NewRecordBatch()
}

// sinkWrite writes rows through the real S3 sink, written at now.
func sinkWrite(t *testing.T, env *devstacktest.Env, bucket, prefix string, now time.Time, seq int, rows []result) {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	sink, err := sinks.NewS3(sinks.S3Options{Client: env.S3, Bucket: bucket, Prefix: prefix, SpoolDir: t.TempDir(),
		RollAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rec := batch(rows)
	defer rec.Release()
	acked := make(chan error, 1)
	first := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*seq+1)}
	last := shardpos.Position{Sequence: fmt.Sprintf("4963%052d", 1000*seq+999)}
	if err := sink.Write(ctx, sinks.Batch{Stream: "factory", Shard: "shardId-000000000001", Range: sinks.Range{First: first, Last: last},
		Rec: rec, Ack: func(err error) { acked <- err }}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatalf("the S3 sink failed the batch: %v", err)
	}
}

func gt(id, data, entity, at string) string {
	ext := ""
	if entity != "" {
		ext = fmt.Sprintf(`,"streamscore":{"entity":%q,"time":%q}`, entity, at)
	}
	return fmt.Sprintf(`{"groundTruthData":{"data":%q,"encoding":"CSV"},"eventMetadata":{"eventId":%q},"eventVersion":"0"%s}`+"\n", data, id, ext)
}

// At is 2026-12-03 h:m UTC, the fixture's day.
func At(h, m int) time.Time { return time.Date(2026, 12, 3, h, m, 0, 0, time.UTC) }

// Fixture is the horizon scenario of monitor/dataset's TestJudgePeriodS3,
// with features, in the S3 of the local stack: the results of scorer
// "failure" under results/failure/ as the S3 sink writes them, and the
// ground truth under groundtruth/factory/ as JSON Lines. Range (07:50,
// 08:50], horizon 1h. m-1 fails at 09:20 (the label twice), m-2 at
// 08:30; m-3 has a negative label at 08:45 and a positive one by id for
// its 08:30 window. Each entity has windows ending 08:00 .. 09:00 (09:00
// outside); m-1 one ending 07:50 (outside). An update and a partial row
// are left out; a replay of m-1's 08:20 window, written an hour later and
// listed first, is not the row kept.
type Fixture struct {
	Env    *devstacktest.Env
	Bucket string
	// Request asks for scorer "failure" of pipeline "factory" over the
	// range, results under s3://Bucket/results/, ground truth under
	// s3://Bucket/groundtruth/factory/.
	Request *retrain.RetrainingRequested
	// Want are the training set's rows, sorted, as CSV lines.
	Want []string
}

// New writes the fixture to a bucket of its own.
func New(t *testing.T) *Fixture {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	f := &Fixture{Env: env, Bucket: env.CreateBucket(t)}
	var rows []result
	for k, e := range []string{"m-1", "m-2", "m-3"} {
		for m := 0; m <= 60; m += 10 {
			rows = append(rows, result{entity: e, end: At(8, 0).Add(time.Duration(m) * time.Minute), temp: float64(60 + 10*k + m/10),
				n: int64(100*k + m), version: "xgb-7"})
		}
	}
	rows = append(rows,
		result{entity: "m-1", end: At(7, 50), temp: 1, n: 1, version: "xgb-7"},
		result{entity: "m-1", end: At(8, 0), temp: 2, n: 2, version: "xgb-7", update: true},
		result{entity: "m-2", end: At(8, 40), temp: 3, n: 3, version: "xgb-7", partial: windowing.PartialEvicted},
	)
	sinkWrite(t, env, f.Bucket, "results/failure/", At(9, 1), 1, rows)
	sinkWrite(t, env, f.Bucket, "results/failure/", At(10, 1), 2, []result{{entity: "m-1", end: At(8, 20), temp: 4, n: 4, version: "xgb-7"}})

	m3 := sinks.ResultID("factory", "m-3", At(8, 20), At(8, 30), "xgb-7")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(gt("", "1", "m-1", "2026-12-03T09:20:00.000Z") + gt("", "1", "m-1", "2026-12-03T09:20:00.000Z") +
		gt("", "1", "m-2", "2026-12-03T10:00:00.000Z")))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	for k, body := range map[string][]byte{
		"groundtruth/factory/2026/12/03/08/a.jsonl": []byte(gt("", "1", "m-2", "2026-12-03T08:30:00.000Z") +
			gt("", "0", "m-3", "2026-12-03T08:45:00.000Z") + gt(m3, "1", "m-3", "2026-12-03T08:35:00.000Z") +
			gt("", "1", "m-1", "2026-12-03T07:00:00.000Z")),
		"groundtruth/factory/2026/12/03/09/b.jsonl.gz": gz.Bytes(),
	} {
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.Bucket), Key: aws.String(k), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	f.Request = &retrain.RetrainingRequested{SchemaVersion: 1, RequestID: "rq-" + f.Bucket, Pipeline: "factory", Reason: retrain.ReasonQuality,
		Scorer: "failure", At: At(8, 50), Data: retrain.Data{ResultsPrefix: "s3://" + f.Bucket + "/results/",
			GroundTruthPrefix: "s3://" + f.Bucket + "/groundtruth/factory/", From: At(7, 50), To: At(8, 50)}}

	// m-1: 08:20 .. 08:50 positive (09:20 within the hour after), its
	// outcome 09:20; m-2: 08:00 .. 08:20 positive (08:30); m-3: 08:30
	// positive by id (its label's time the outcome), the rest negative.
	row := func(e string, m int, temp float64, n int64, label, outcome string) string {
		return fmt.Sprintf("%s,2026-12-03T08:%02d:00.000000Z,%g,%d,%s,%s", e, m, temp, n, label, outcome)
	}
	for m := 0; m <= 50; m += 10 {
		l1, o1 := "0", ""
		if m >= 20 {
			l1, o1 = "1", "2026-12-03T09:20:00.000000Z"
		}
		l2, o2 := "0", ""
		if m <= 20 {
			l2, o2 = "1", "2026-12-03T08:30:00.000000Z"
		}
		l3, o3 := "0", ""
		if m == 30 {
			l3, o3 = "1", "2026-12-03T08:35:00.000000Z"
		}
		f.Want = append(f.Want, row("m-1", m, float64(60+m/10), int64(m), l1, o1), row("m-2", m, float64(70+m/10), int64(100+m), l2, o2),
			row("m-3", m, float64(80+m/10), int64(200+m), l3, o3))
	}
	slices.Sort(f.Want)
	return f
}

// NeedXGBoost fails the test unless python can import xgboost and numpy,
// which `make deps` installs (Debian's python3-xgboost): a training test
// that skipped in CI would prove nothing. -short skips it instead, for
// quick local loops.
func NeedXGBoost(t *testing.T, python string) {
	t.Helper()
	if err := exec.Command(python, "-c", "import xgboost, numpy").Run(); err != nil {
		if testing.Short() {
			t.Skipf("-short: %s cannot import xgboost and numpy: %v", python, err)
		}
		t.Fatalf("%s cannot import xgboost and numpy (make deps installs Debian's python3-xgboost; or apt-get install python3-xgboost): %v", python, err)
	}
}
