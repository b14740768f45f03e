package sinks_test

// An external test package: it reads the sink's files back with
// monitor/dataset, which imports sinks.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
)

func TestGroundTruthPrefixes(t *testing.T) {
	for _, c := range [][3]string{
		{"factory", "", "groundtruth/factory/"},
		{"factory", "labels/gt", "labels/gt/"},
		{"factory", "labels/gt/", "labels/gt/"},
	} {
		if got := sinks.GroundTruthPrefix(c[0], c[1]); got != c[2] {
			t.Errorf("GroundTruthPrefix(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
	// The hour is UTC's whatever the time's zone.
	paris := time.FixedZone("CET", 3600)
	if got := sinks.GroundTruthHourPrefix("gt/", time.Date(2026, 12, 3, 8, 59, 0, 0, paris)); got != "gt/2026/12/03/07/" {
		t.Errorf("GroundTruthHourPrefix = %q, want gt/2026/12/03/07/", got)
	}
}

// TestGroundTruthNormalisedText: labels are written in Go's shortest form
// and inference ids as 32 lowercase hex digits; what no join could use is
// an error naming the value.
func TestGroundTruthNormalisedText(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{1, "1"}, {0, "0"}, {0.25, "0.25"}, {-3, "-3"}, {1.5e-7, "1.5e-07"}, {1234567, "1.234567e+06"}, {0.30000000000000004, "0.30000000000000004"}, {math.Copysign(0, -1), "0"}} {
		got, err := sinks.AppendGroundTruthData([]byte("x"), c.v)
		if err != nil || string(got) != "x"+c.want {
			t.Errorf("AppendGroundTruthData(%v) = %q, %v; want %q", c.v, got, err, "x"+c.want)
		}
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got, err := sinks.AppendGroundTruthData([]byte("x"), v); err == nil || string(got) != "x" {
			t.Errorf("AppendGroundTruthData(%v) = %q, %v; want an error and nothing appended", v, got, err)
		}
	}
	const id = "0123456789abcdef0123456789ABCDEF"
	if got, err := sinks.AppendInferenceID([]byte("x"), id); err != nil || string(got) != "x"+strings.ToLower(id) {
		t.Errorf("AppendInferenceID(%q) = %q, %v", id, got, err)
	}
	for _, c := range [][2]string{
		{id[:31], "got 31 characters"},
		{id + "0", "got 33 characters"},
		{"0123456789abcdef0123456789abcdeg", `'g' at 31 is not a hex digit`},
		{"0123456789abcdef-123456789abcdef", `'-' at 16`},
		{strings.Repeat("z", 200), "got 200 characters"},
	} {
		got, err := sinks.AppendInferenceID([]byte("x"), c[0])
		if err == nil || !strings.Contains(err.Error(), c[1]) || string(got) != "x" {
			t.Errorf("AppendInferenceID(%q) = %q, %v; want an error with %q and nothing appended", c[0], got, err, c[1])
		}
	}
}

// gtLabel is one label as a test scripts it.
type gtLabel struct {
	entity string
	at     time.Time
	data   string
	id     string
}

func gtBatch(labels ...gtLabel) arrow.RecordBatch {
	b := sinks.NewGroundTruthBuilder(memory.DefaultAllocator)
	defer b.Release()
	for _, l := range labels {
		b.Append(l.entity, l.at.UnixNano(), []byte(l.data), []byte(l.id))
	}
	return b.NewRecordBatch()
}

func seqPos(n int) shardpos.Position {
	return shardpos.Position{Sequence: fmt.Sprintf("4963%052d", n), SubSequence: uint64(n % 3)}
}

// gtAcks records each batch's ack.
type gtAcks struct {
	mu  sync.Mutex
	got map[string]error
}

func (a *gtAcks) fn(name string) func(error) {
	return func(err error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, dup := a.got[name]; dup {
			panic("batch " + name + " acked twice")
		}
		a.got[name] = err
	}
}

func (a *gtAcks) get(name string) (error, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err, ok := a.got[name]
	return err, ok
}

// wait waits for the named batches' acks and returns their errors.
func (a *gtAcks) wait(t *testing.T, within time.Duration, names ...string) []error {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var errs []error
		for _, n := range names {
			if err, ok := a.get(n); ok {
				errs = append(errs, err)
			}
		}
		if len(errs) == len(names) {
			return errs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of batches %v acked within %s", len(errs), names, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newGroundTruth(t *testing.T, o sinks.GroundTruthOptions) *sinks.GroundTruth {
	t.Helper()
	s, err := sinks.NewGroundTruth(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// objects returns every object under prefix: key -> content.
func objects(t *testing.T, c *s3.Client, bucket, prefix string) map[string]string {
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

const (
	idA = "5f0e4c1a9b7d2e38c6a1f04b9e3d7c21"
	idB = "aa0e4c1a9b7d2e38c6a1f04b9e3d7cff"
)

// TestGroundTruthWritesModelMonitorLines: labels of two event hours from
// two batches of one shard become one file per hour, under Model Monitor's
// yyyy/mm/dd/hh layout, named by the shard and the roll's position range,
// holding exactly the lines the format promises (a duplicate label twice,
// an entity that needs escaping, no inference id as ""); the batches are
// acked once they are uploaded; the existing ground-truth reader reads the
// files; and a replay at the same positions overwrites the same objects.
func TestGroundTruthWritesModelMonitorLines(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	reg := prometheus.NewRegistry()
	m, err := sinks.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	prefix := sinks.GroundTruthPrefix("factory", "")
	s := newGroundTruth(t, sinks.GroundTruthOptions{Client: env.S3, Bucket: bucket, Prefix: prefix, Metrics: m})
	h6 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	a := &gtAcks{got: map[string]error{}}
	write := func(name string, first, last int, labels ...gtLabel) {
		t.Helper()
		rec := gtBatch(labels...)
		defer rec.Release()
		if err := s.Write(ctx, sinks.Batch{Stream: "labels", Shard: "shardId-000000000001", Range: sinks.Range{First: seqPos(first), Last: seqPos(last)},
			Rec: rec, Ack: a.fn(name)}); err != nil {
			t.Fatal(err)
		}
	}
	send := func() {
		write("1", 1, 4,
			gtLabel{"m-1", h6.Add(-time.Millisecond), "1", idA},          // 05:59:59.999
			gtLabel{"m-2", h6.Add(123456789 * time.Nanosecond), "0", ""}, // 06:00:00.123, no id
		)
		write("2", 5, 8,
			gtLabel{"m-1", h6.Add(-time.Millisecond), "1", idA}, // the same label again
			gtLabel{`m "3"\ñ`, h6.Add(30 * time.Minute), "0.25", idB},
		)
	}
	send()
	// Nothing is acked before the files are uploaded, which Flush forces.
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, err := range a.wait(t, time.Minute, "1", "2") {
		if err != nil {
			t.Fatalf("acked with %v", err)
		}
	}
	name := "shardId-000000000001_" + seqPos(1).String() + "_" + seqPos(8).String() + ".jsonl"
	want := map[string]string{
		prefix + "2026/12/03/05/" + name: `{"groundTruthData":{"data":"1","encoding":"CSV"},"eventMetadata":{"eventId":"` + idA + `"},"eventVersion":"0","streamscore":{"entity":"m-1","time":"2026-12-03T05:59:59.999Z"}}` + "\n" +
			`{"groundTruthData":{"data":"1","encoding":"CSV"},"eventMetadata":{"eventId":"` + idA + `"},"eventVersion":"0","streamscore":{"entity":"m-1","time":"2026-12-03T05:59:59.999Z"}}` + "\n",
		prefix + "2026/12/03/06/" + name: `{"groundTruthData":{"data":"0","encoding":"CSV"},"eventMetadata":{"eventId":""},"eventVersion":"0","streamscore":{"entity":"m-2","time":"2026-12-03T06:00:00.123Z"}}` + "\n" +
			`{"groundTruthData":{"data":"0.25","encoding":"CSV"},"eventMetadata":{"eventId":"` + idB + `"},"eventVersion":"0","streamscore":{"entity":"m \"3\"\\ñ","time":"2026-12-03T06:30:00.000Z"}}` + "\n",
	}
	got := objects(t, env.S3, bucket, prefix)
	checkObjects(t, got, want)
	if n := gatherSink(t, reg, "streamscore_sink_rows_total", "groundtruth"); n != 4 {
		t.Errorf("streamscore_sink_rows_total{sink=groundtruth} = %v, want 4", n)
	}

	// The ground-truth reader of `monitor quality` reads the hour with
	// inference ids (it needs them; the other hour's unlabelled-by-id line
	// is for the join by entity).
	objs, err := dataset.Open(ctx, env.S3, "s3://"+bucket+"/"+prefix+"2026/12/03/05/")
	if err != nil {
		t.Fatal(err)
	}
	var read []dataset.Label
	if _, err := dataset.ReadLabels(ctx, objs, dataset.LabelOptions{Binary: true}, func(l dataset.Label) error {
		read = append(read, l)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(read) != 2 || read[0].ID != idA || read[0].Value != 1 || read[1] != read[0] {
		t.Errorf("dataset.ReadLabels read %+v, want the label of %s twice", read, idA)
	}

	// A replay at the same positions writes the same keys and bytes.
	a = &gtAcks{got: map[string]error{}}
	send()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(t, time.Minute, "1", "2")
	checkObjects(t, objects(t, env.S3, bucket, prefix), want)
}

func checkObjects(t *testing.T, got, want map[string]string) {
	t.Helper()
	keys := func(m map[string]string) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("objects %q, want %q", keys(got), keys(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s holds\n%s\nwant\n%s", k, got[k], w)
		}
	}
}

func gatherSink(t *testing.T, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// TestGroundTruthRollsByAgeAndSize: without any flush, a shard's files go
// out once they are RollAge old, and a roll past RollBytes goes at once;
// each roll has its own key.
func TestGroundTruthRollsByAgeAndSize(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	at := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	a := &gtAcks{got: map[string]error{}}

	byAge := newGroundTruth(t, sinks.GroundTruthOptions{Client: env.S3, Bucket: bucket, Prefix: "age/", RollAge: 50 * time.Millisecond})
	rec := gtBatch(gtLabel{"m-1", at, "1", idA})
	defer rec.Release()
	if err := byAge.Write(ctx, sinks.Batch{Stream: "l", Shard: "s", Range: sinks.Range{First: seqPos(1), Last: seqPos(1)}, Rec: rec, Ack: a.fn("age")}); err != nil {
		t.Fatal(err)
	}
	if err := a.wait(t, time.Minute, "age")[0]; err != nil {
		t.Fatal(err)
	}
	if got := objects(t, env.S3, bucket, "age/"); len(got) != 1 {
		t.Errorf("rolled by age: objects %v, want one", got)
	}

	// Each line is 197 bytes: a 200-byte roll takes two batches.
	bySize := newGroundTruth(t, sinks.GroundTruthOptions{Client: env.S3, Bucket: bucket, Prefix: "size/", RollBytes: 200, RollAge: time.Hour})
	for i := range 4 {
		if err := bySize.Write(ctx, sinks.Batch{Stream: "l", Shard: "s", Range: sinks.Range{First: seqPos(10 + i), Last: seqPos(10 + i)}, Rec: rec, Ack: a.fn(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range a.wait(t, time.Minute, "0", "1", "2", "3") {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := objects(t, env.S3, bucket, "size/")
	want := map[string]bool{}
	for _, r := range [][2]int{{10, 11}, {12, 13}} {
		want["size/2026/12/03/07/s_"+seqPos(r[0]).String()+"_"+seqPos(r[1]).String()+".jsonl"] = true
	}
	for k, v := range got {
		if !want[k] || strings.Count(v, "\n") != 2 {
			t.Errorf("rolled by size: %s holds %d lines, want two files %v of two lines", k, strings.Count(v, "\n"), want)
		}
	}
	if len(got) != 2 {
		t.Errorf("rolled by size: %d objects, want 2", len(got))
	}
}

// TestGroundTruthOutageHoldsAcks: with S3 unreachable nothing is acked
// (so nothing is checkpointed) while the sink retries, and once the labels
// and batches it holds pass MaxBufferedBytes, Write blocks: memory stays
// bounded and the shard slows down. Once S3 is back every batch taken is
// acked with nil and its label is there, once.
func TestGroundTruthOutageHoldsAcks(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	proxy := env.Proxy(t, env.Endpoints.S3)
	client := devstack.Endpoints{S3: proxy.URL()}.Clients().S3
	reg := prometheus.NewRegistry()
	m, err := sinks.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// A one-label batch holds about 4 KB until its ack: 16 KiB is a few.
	s := newGroundTruth(t, sinks.GroundTruthOptions{Client: client, Bucket: bucket, Prefix: "gt/", RollAge: 50 * time.Millisecond,
		MaxBufferedBytes: 16 << 10, Queue: 1, Backoff: sinks.Backoff{Base: 50 * time.Millisecond, Max: 300 * time.Millisecond}, Metrics: m})
	if err := proxy.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	a := &gtAcks{got: map[string]error{}}
	var taken []string
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("50 batches taken during the outage: Write never blocked")
		}
		rec := gtBatch(gtLabel{fmt.Sprintf("m-%d", i), at, "1", ""})
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.Write(wctx, sinks.Batch{Stream: "l", Shard: "s", Range: sinks.Range{First: seqPos(i), Last: seqPos(i)}, Rec: rec, Ack: a.fn(fmt.Sprint(i))})
		cancel()
		rec.Release()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, fmt.Sprint(i))
	}
	// 5 batches pass 16 KiB; then one waits in the handler, one in the queue.
	t.Logf("%d batches taken before Write blocked", len(taken))
	if len(taken) > 6 {
		t.Errorf("%d batches taken before Write blocked, want at most 6", len(taken))
	}
	deadline := time.Now().Add(90 * time.Second)
	for gatherSink(t, reg, "streamscore_sink_retries_total", "groundtruth") < 10 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 10 retries 90s into the outage")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range taken {
		if err, ok := a.get(name); ok {
			t.Fatalf("batch %s acked (%v) while S3 was unreachable", name, err)
		}
	}
	if err := proxy.SetEnabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, err := range a.wait(t, time.Minute, taken...) {
		if err != nil {
			t.Fatalf("acked with %v after the outage", err)
		}
	}
	lines := 0
	for _, v := range objects(t, env.S3, bucket, "gt/") {
		lines += strings.Count(v, "\n")
	}
	if lines != len(taken) {
		t.Errorf("%d lines in S3 after the outage, want the %d labels taken", lines, len(taken))
	}
}

// A batch that is not in the ground-truth layout is refused for good: the
// shard stops rather than write lines without a label.
func TestGroundTruthRefusesOtherLayouts(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	s := newGroundTruth(t, sinks.GroundTruthOptions{Client: env.S3, Bucket: "never-written"})
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{
		{Name: sinks.GTColEntity, Type: arrow.BinaryTypes.String},
		{Name: sinks.GTColTime, Type: &arrow.TimestampType{Unit: arrow.Millisecond}},
	}, nil))
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append("m-1")
	b.Field(1).(*array.TimestampBuilder).Append(1)
	rec := b.NewRecordBatch()
	defer rec.Release()
	a := &gtAcks{got: map[string]error{}}
	if err := s.Write(devstacktest.Ctx(t), sinks.Batch{Stream: "l", Shard: "s", Rec: rec, Ack: a.fn("bad")}); err != nil {
		t.Fatal(err)
	}
	err := a.wait(t, time.Minute, "bad")[0]
	var se *sinks.SchemaError
	if !sinks.IsPermanent(err) || !errors.As(err, &se) || se.Column != sinks.GTColData {
		t.Errorf("acked with %v, want a permanent error naming column %q", err, sinks.GTColData)
	}
}
