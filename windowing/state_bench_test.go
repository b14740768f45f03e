package windowing

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// FactoryWindow returns the machine_5m window and the sensor schema of
// examples/factory.yaml, loaded by the config package, so that the state
// benchmark measures the shipped example, not a copy. factory_test.go sets
// it: config imports windowing, so only an external test (package
// windowing_test) may import config, and this benchmark needs the
// package's internals.
var FactoryWindow func(tb testing.TB) (WindowSpec, Schema)

// BenchmarkFactoryStateBytes measures what one machine costs in memory in
// the factory example's 5-minute hopping window (1-minute slide, 2 minutes
// of allowed lateness, a p95 quantile among 12 features), in steady state
// after 10 minutes of event time. heap-B/key is the Go heap the operator
// holds (runtime.MemStats after a GC, sketches and pools included: the true
// cost); state-B/key is what Stats.StateBytes reports; the ratio of the two
// says how honest StateBytes is. One op is one event.
//
//	go test -run '^$' -bench FactoryStateBytes -benchtime 200000x ./windowing
func BenchmarkFactoryStateBytes(b *testing.B) {
	const nkeys = 2000
	for _, perMin := range []int{10, 60} {
		b.Run(fmt.Sprintf("readings=%d/min", perMin), func(b *testing.B) {
			w, s := FactoryWindow(b)
			w.MaxKeys = 2 * nkeys
			st := newSensorStream(b, nkeys, perMin)
			defer release(st.batches)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			op, err := NewOperator(w, s, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer op.Release()
			run := func(c, budget int) int {
				recs := st.cycle(c)
				defer release(recs)
				done := 0
				for _, rec := range recs {
					if done >= budget {
						break
					}
					out, err := op.Process(rec, time.Unix(0, 0))
					if err != nil {
						b.Fatal(err)
					}
					if out.Features != nil {
						out.Features.Release()
					}
					done += int(rec.NumRows())
				}
				return done
			}
			c := 0
			for ; c < 10; c++ {
				run(c, st.events)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; c++ {
				done += run(c, b.N-done)
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&m1)
			stats := op.Stats()
			keys := float64(stats.OpenKeys)
			heap := float64(int64(m1.HeapAlloc) - int64(m0.HeapAlloc))
			b.ReportMetric(heap/keys, "heap-B/key")
			b.ReportMetric(float64(stats.StateBytes)/keys, "state-B/key")
			b.ReportMetric(heap/float64(stats.StateBytes), "heap/state")
			b.ReportMetric(float64(stats.Panes)/keys, "panes/key")
			runtime.KeepAlive(op)
			runtime.KeepAlive(st)
		})
	}
}
