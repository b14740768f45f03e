package sinks

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// row is one scored result as a test scripts it.
type row struct {
	entity   string
	ws       time.Time
	dur      time.Duration
	feats    []float64
	score    float64
	model    string
	fallback bool
	update   bool
}

var tsNano = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}

// resultRecord builds a record in the layout windowing and the scorer
// produce, including the process-local offset columns sinks must drop.
func resultRecord(t testing.TB, nfeat int, rows []row) arrow.RecordBatch {
	t.Helper()
	mem := memory.DefaultAllocator
	fields := []arrow.Field{
		{Name: ColEntity, Type: arrow.BinaryTypes.String},
		{Name: ColWindowStart, Type: tsNano},
		{Name: ColWindowEnd, Type: tsNano},
		{Name: ColUpdate, Type: arrow.FixedWidthTypes.Boolean},
		{Name: "offset_first", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "offset_last", Type: arrow.PrimitiveTypes.Uint64},
	}
	for j := range nfeat {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%02d", j), Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	fields = append(fields,
		arrow.Field{Name: ColScore, Type: arrow.PrimitiveTypes.Float64},
		arrow.Field{Name: ColModelVersion, Type: arrow.BinaryTypes.String},
		arrow.Field{Name: ColFallback, Type: arrow.FixedWidthTypes.Boolean},
	)
	b := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	defer b.Release()
	for i, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.entity)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ws.UnixNano()))
		d := r.dur
		if d == 0 {
			d = time.Minute
		}
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ws.Add(d).UnixNano()))
		b.Field(3).(*array.BooleanBuilder).Append(r.update)
		b.Field(4).(*array.Uint64Builder).Append(uint64(i))
		b.Field(5).(*array.Uint64Builder).Append(uint64(i + 1))
		for j := range nfeat {
			v := float64(i*100 + j)
			if j < len(r.feats) {
				v = r.feats[j]
			}
			b.Field(6 + j).(*array.Float64Builder).Append(v)
		}
		b.Field(6 + nfeat).(*array.Float64Builder).Append(r.score)
		b.Field(7 + nfeat).(*array.StringBuilder).Append(r.model)
		b.Field(8 + nfeat).(*array.BooleanBuilder).Append(r.fallback)
	}
	return b.NewRecordBatch()
}

// pos makes a position with a realistic 56-digit sequence number.
func pos(n int) shardpos.Position {
	return shardpos.Position{Sequence: fmt.Sprintf("4963%052d", n)}
}

// acks collects batch outcomes.
type acks struct {
	mu  sync.Mutex
	got map[string]error
	ch  chan string
}

func newAcks() *acks { return &acks{got: map[string]error{}, ch: make(chan string, 1024)} }

func (a *acks) fn(name string) func(error) {
	return func(err error) {
		a.mu.Lock()
		if _, dup := a.got[name]; dup {
			panic("batch " + name + " acked twice")
		}
		a.got[name] = err
		a.mu.Unlock()
		a.ch <- name
	}
}

func (a *acks) get(name string) (error, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err, ok := a.got[name]
	return err, ok
}

// wait blocks until every named batch is acked, and fails on an error ack.
func (a *acks) wait(t testing.TB, d time.Duration, names ...string) {
	t.Helper()
	deadline := time.After(d)
	for {
		all := true
		for _, n := range names {
			err, ok := a.get(n)
			if ok && err != nil {
				t.Fatalf("batch %s acked with error: %v", n, err)
			}
			all = all && ok
		}
		if all {
			return
		}
		select {
		case <-a.ch:
		case <-deadline:
			t.Fatalf("batches %v not all acked after %v", names, d)
		}
	}
}

// counter reads a sink counter from a registry.
func counter(t testing.TB, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	return sinkMetric(t, reg, name, sink)
}

// sinkMetric sums a counter or gauge of one sink across its series.
func sinkMetric(t testing.TB, reg *prometheus.Registry, name, sink string) float64 {
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
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() // one of the two is set
				}
			}
		}
	}
	return sum
}

func newMetrics(t testing.TB) (*Metrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func closeSink(t testing.TB, s Sink) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}
