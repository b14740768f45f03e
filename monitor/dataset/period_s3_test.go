package dataset

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// TestJudgePeriodResultsFixture: the S3 sink's committed results file
// (qualityResults) judged by id against its ground truth: the champions
// as `monitor quality` finds them (TestMonitorQualityResults: xgb-7 TP 2
// FP 1 FN 1 TN 1, xgb-8 TP 1 TN 1, press-08 unlabelled), and the shadow
// challenger xgb-9, which scored every row 0.5 (positive), on the same
// seven labelled rows as the champion beside it.
func TestJudgePeriodResultsFixture(t *testing.T) {
	preds, err := Open(t.Context(), nil, resultsPQ)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := Open(t.Context(), nil, resultsLabels)
	if err != nil {
		t.Fatal(err)
	}
	q, err := JudgePeriod(t.Context(), preds, labels, PeriodOptions{Start: qualityWindow, End: qualityWindow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		st   *quality.Statistics
		want quality.ConfusionMatrix
	}{
		{"all", q.All, quality.ConfusionMatrix{TruePositives: 3, FalsePositives: 1, FalseNegatives: 1, TrueNegatives: 2}},
		{"xgb-7", q.Model("xgb-7", RoleChampion).Statistics, quality.ConfusionMatrix{TruePositives: 2, FalsePositives: 1, FalseNegatives: 1, TrueNegatives: 1}},
		{"xgb-8", q.Model("xgb-8", RoleChampion).Statistics, quality.ConfusionMatrix{TruePositives: 1, TrueNegatives: 1}},
		{"xgb-9", q.Model("xgb-9", RoleChallenger).Statistics, quality.ConfusionMatrix{TruePositives: 4, FalsePositives: 3}},
		{"the champion beside xgb-9", q.Model("xgb-9", RoleChallenger).Champion, quality.ConfusionMatrix{TruePositives: 3, FalsePositives: 1, FalseNegatives: 1, TrueNegatives: 2}},
	} {
		if c.st.Binary.ConfusionMatrix != c.want {
			t.Errorf("%s: %+v, want %+v", c.what, c.st.Binary.ConfusionMatrix, c.want)
		}
	}
	if c := q.Model("xgb-9", RoleChallenger).Counts; c != (ModelCounts{Predictions: 8, Labelled: 7, Unlabelled: 1}) {
		t.Errorf("xgb-9 counts %+v", c)
	}
	if q.PredictionsRead.LeftOut != 2 {
		t.Errorf("read %+v: want the update and the part left out", q.PredictionsRead)
	}
}

// periodResult is a row of the pipeline's result batch for the horizon
// scenario: a ten-minute window ending at end.
type periodResult struct {
	entity     string
	end        time.Time
	score      float64
	version    string
	challenger float64 // NaN: null (no challenger scored the row)
	chVersion  string  // "": null
	update     bool
	partial    string
}

// periodBatch builds rows in the pipeline's result layout
// (pipeline/results.go), a shadow challenger's columns included.
func periodBatch(t testing.TB, rows []periodResult) arrow.RecordBatch {
	t.Helper()
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	f64, str := arrow.PrimitiveTypes.Float64, arrow.BinaryTypes.String
	s := arrow.NewSchema([]arrow.Field{
		{Name: sinks.ColEntity, Type: str},
		{Name: sinks.ColWindowStart, Type: ts},
		{Name: sinks.ColWindowEnd, Type: ts},
		{Name: "temp_mean", Type: f64},
		{Name: sinks.ColUpdate, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartial, Type: str},
		{Name: windowing.ColOffsetFirst, Type: arrow.PrimitiveTypes.Uint64},
		{Name: windowing.ColOffsetLast, Type: arrow.PrimitiveTypes.Uint64},
		{Name: sinks.ColScore, Type: f64, Nullable: true},
		{Name: sinks.ColModelVersion, Type: str},
		{Name: sinks.ColFallback, Type: arrow.FixedWidthTypes.Boolean},
		{Name: sinks.ColPartialID, Type: str, Nullable: true},
		{Name: sinks.ColChallengerScore, Type: f64, Nullable: true},
		{Name: sinks.ColChallengerModelVersion, Type: str, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	for i, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.entity)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r.end.Add(-10 * time.Minute).UnixNano()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(r.end.UnixNano()))
		b.Field(3).(*array.Float64Builder).Append(60 + float64(i))
		b.Field(4).(*array.BooleanBuilder).Append(r.update)
		b.Field(5).(*array.StringBuilder).Append(r.partial)
		b.Field(6).(*array.Uint64Builder).Append(uint64(i))
		b.Field(7).(*array.Uint64Builder).Append(uint64(i))
		b.Field(8).(*array.Float64Builder).Append(r.score)
		b.Field(9).(*array.StringBuilder).Append(r.version)
		b.Field(10).(*array.BooleanBuilder).Append(false)
		if r.partial != "" {
			b.Field(11).(*array.StringBuilder).Append(fmt.Sprintf("shardId-000000000001/%d", i))
		} else {
			b.Field(11).(*array.StringBuilder).AppendNull()
		}
		if math.IsNaN(r.challenger) {
			b.Field(12).(*array.Float64Builder).AppendNull()
		} else {
			b.Field(12).(*array.Float64Builder).Append(r.challenger)
		}
		if r.chVersion == "" {
			b.Field(13).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(13).(*array.StringBuilder).Append(r.chVersion)
		}
	}
	return b.NewRecordBatch()
}

// sinkWrite writes rows through the S3 sink, written at now, and returns
// the keys it added under prefix.
func sinkWrite(t *testing.T, env *devstacktest.Env, bucket, prefix string, now time.Time, seq int, rows []periodResult) []string {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	before := listKeys(t, env.S3, bucket, prefix)
	sink, err := sinks.NewS3(sinks.S3Options{Client: env.S3, Bucket: bucket, Prefix: prefix, SpoolDir: t.TempDir(),
		RollAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rec := periodBatch(t, rows)
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
	var added []string
	for _, k := range listKeys(t, env.S3, bucket, prefix) {
		if !slices.Contains(before, k) {
			added = append(added, k)
		}
	}
	if len(added) == 0 {
		t.Fatal("the S3 sink wrote no object")
	}
	return added
}

func listKeys(t *testing.T, c S3, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// TestJudgePeriodS3: one period, (07:50, 08:50] of window_end, judged
// from what the S3 sink wrote and ground truth in the exact JSON Lines
// shape our ground-truth sink writes, both read from the local S3 server
// through S3Object (the reducer's keys). Horizon 1h. m-1 fails at 09:20
// (twice: a replay of the label), m-2 at 08:30; m-3 has a negative label
// at 08:45, and its 08:30 prediction a label by id (positive). Labels at
// 07:00 and 10:00 reach nothing. Each entity has windows ending 08:00 ..
// 08:50, one ending 09:00 (outside), and m-1 one ending 07:50 (outside,
// the period's start: a window ending on a boundary is the period's before).
// xgb-7 serves m-1 (0.8) and m-2 (0.2) with the challenger xgb-9 in
// shadow (0.7 and 0.9); the canary xgb-8 serves m-3 (0.6), no
// challenger. An update and a part are left out. A replay, written later
// and read first, scores m-1's 08:20 window 0.1: the original (0.8) is
// judged.
//
// So m-1's 08:20 .. 08:50 are positive (08:20 = T - h, the edge, in),
// 08:00 and 08:10 negative; m-2's 08:00 .. 08:20 positive, 08:30 (= T)
// on negative; m-3's all negative but 08:30. xgb-7: TP 4 FP 2 FN 3 TN 3;
// xgb-8: TP 1 FP 5; xgb-9: TP 7 FP 5; the champion on xgb-9's rows is
// xgb-7's.
func TestJudgePeriodS3(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	at := func(h, m int) time.Time { return time.Date(2026, 12, 3, h, m, 0, 0, time.UTC) }
	none := math.NaN()
	var rows []periodResult
	for _, e := range []struct {
		entity, version string
		score, ch       float64
		chVersion       string
	}{{"m-1", "xgb-7", 0.8, 0.7, "xgb-9"}, {"m-2", "xgb-7", 0.2, 0.9, "xgb-9"}, {"m-3", "xgb-8", 0.6, none, ""}} {
		for m := 0; m <= 60; m += 10 {
			rows = append(rows, periodResult{entity: e.entity, end: at(8, 0).Add(time.Duration(m) * time.Minute), score: e.score,
				version: e.version, challenger: e.ch, chVersion: e.chVersion})
		}
	}
	rows = append(rows,
		periodResult{entity: "m-1", end: at(7, 50), score: 0.8, version: "xgb-7", challenger: 0.7, chVersion: "xgb-9"},
		periodResult{entity: "m-1", end: at(8, 0), score: 0.1, version: "xgb-7", challenger: 0.1, chVersion: "xgb-9", update: true},
		periodResult{entity: "m-2", end: at(8, 40), score: 0.9, version: "xgb-7", challenger: 0.1, chVersion: "xgb-9", partial: windowing.PartialEvicted},
	)
	written := at(9, 1)
	original := sinkWrite(t, env, bucket, "results/", written, 1, rows)
	replay := sinkWrite(t, env, bucket, "results/", written.Add(time.Hour), 2, []periodResult{
		{entity: "m-1", end: at(8, 20), score: 0.1, version: "xgb-7", challenger: 0.1, chVersion: "xgb-9"}})
	var preds []Object
	for _, k := range slices.Concat(replay, original) { // the replay read first
		preds = append(preds, S3Object(env.S3, bucket, k))
	}

	m3id := sinks.ResultID("factory", "m-3", at(8, 20), at(8, 30), "xgb-8")
	gtLines := func(lines ...string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(strings.Join(lines, "")))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	files := map[string][]byte{
		"groundtruth/factory/2026/12/03/08/a.jsonl": []byte(
			gtEntity("", "1", "m-2", "2026-12-03T08:30:00.000Z") +
				gtEntity("", "0", "m-3", "2026-12-03T08:45:00.000Z") +
				gtEntity(m3id, "1", "m-3", "2026-12-03T08:35:00.000Z") +
				gtEntity("", "1", "m-1", "2026-12-03T07:00:00.000Z")),
		"groundtruth/factory/2026/12/03/09/b.jsonl.gz": gtLines(
			gtEntity("", "1", "m-1", "2026-12-03T09:20:00.000Z"),
			gtEntity("", "1", "m-1", "2026-12-03T09:20:00.000Z"),
			gtEntity("", "1", "m-2", "2026-12-03T10:00:00.000Z")),
	}
	var labels []Object
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(files[k])}); err != nil {
			t.Fatal(err)
		}
		labels = append(labels, S3Object(env.S3, bucket, k))
	}

	q, err := JudgePeriod(ctx, preds, labels, PeriodOptions{Horizon: time.Hour, Start: at(7, 50), End: at(8, 50)})
	if err != nil {
		t.Fatal(err)
	}
	xgb7 := quality.ConfusionMatrix{TruePositives: 4, FalsePositives: 2, FalseNegatives: 3, TrueNegatives: 3}
	for _, c := range []struct {
		what string
		m    *ModelQuality
		cm   quality.ConfusionMatrix
		n    ModelCounts
	}{
		{"champion xgb-7", q.Model("xgb-7", RoleChampion), xgb7, ModelCounts{Predictions: 12, Labelled: 12, Duplicates: 1, Outside: 3}},
		{"canary xgb-8", q.Model("xgb-8", RoleChampion), quality.ConfusionMatrix{TruePositives: 1, FalsePositives: 5}, ModelCounts{Predictions: 6, Labelled: 6, Outside: 1}},
		{"challenger xgb-9", q.Model("xgb-9", RoleChallenger), quality.ConfusionMatrix{TruePositives: 7, FalsePositives: 5}, ModelCounts{Predictions: 12, Labelled: 12, Duplicates: 1, Outside: 3}},
	} {
		if c.m == nil {
			t.Fatalf("%s: not judged; models %+v", c.what, q.Models)
		}
		if got := c.m.Statistics.Binary.ConfusionMatrix; got != c.cm || c.m.Counts != c.n {
			t.Errorf("%s: %+v, counts %+v\nwant %+v, %+v", c.what, got, c.m.Counts, c.cm, c.n)
		}
	}
	if got := q.Model("xgb-9", RoleChallenger).Champion.Binary.ConfusionMatrix; got != xgb7 {
		t.Errorf("the champion beside xgb-9: %+v, want xgb-7's %+v", got, xgb7)
	}
	want := PeriodCounts{ModelCounts: ModelCounts{Predictions: 18, Labelled: 18, Duplicates: 1, Outside: 4},
		Labels: 7, IDLabels: 1, EntityLabels: 3, DuplicateLabels: 1, LabelsOutside: 2}
	if q.Counts != want {
		t.Errorf("counts %+v\nwant %+v", q.Counts, want)
	}
	if q.PredictionsRead.LeftOut != 2 || q.PredictionsRead.Files != len(preds) || q.LabelsRead.Files != 2 {
		t.Errorf("reads %+v, %+v: want the update and the part left out, every file read", q.PredictionsRead, q.LabelsRead)
	}

	// A key that is not there is named by its URI when read.
	_, err = JudgePeriod(ctx, []Object{S3Object(env.S3, bucket, "results/none.parquet")}, nil, PeriodOptions{})
	if want := "reading predictions: s3://" + bucket + "/results/none.parquet: no such object"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a missing key: %v, want %q", err, want)
	}
}
