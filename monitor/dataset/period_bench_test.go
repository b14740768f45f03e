package dataset

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchID is the i-th result_id-shaped id: 32 lowercase hex digits.
func benchID(i int) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], uint64(i)*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(b[:8], uint64(i))
	return hex.EncodeToString(b[:])
}

// BenchmarkPeriodMemory measures what a period's join holds, as live
// heap after a collection: bytes per prediction (its row and its place in
// the id set: result_ids, a shadow challenger, half labelled by id), per
// label by id, and per label by entity, with one label per entity (the
// worst case: each brings its entity's name and index entry) and with ten.
// The numbers in docs/quality.md come from
//
//	go test -run '^$' -bench PeriodMemory -benchtime 1x ./monitor/dataset/
func BenchmarkPeriodMemory(b *testing.B) {
	const n = 1_000_000
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	for range b.N {
		b.StopTimer()
		base := heapInUse()
		j, err := newPeriodJoin(PeriodOptions{Horizon: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n / 2 {
			if err := j.label(Label{ID: benchID(i), Value: float64(i % 2)}); err != nil {
				b.Fatal(err)
			}
		}
		idLabels := heapInUse()
		for i := range n {
			if err := j.label(Label{Value: 1, Entity: fmt.Sprintf("machine-%07d", i), Time: t0.Add(time.Duration(i) * time.Millisecond)}); err != nil {
				b.Fatal(err)
			}
		}
		j.entities.seal()
		oneEach := heapInUse()
		j.entities = newEntityIndex()
		// The predictions' ids and entities, made before the measure so
		// it counts what the join holds, not what the reader made.
		ids, entities := make([]string, n), make([]string, n/10)
		for i := range ids {
			ids[i] = benchID(i)
		}
		for i := range entities {
			entities[i] = fmt.Sprintf("machine-%07d", i)
		}
		mid := heapInUse()
		for i := range n {
			if err := j.label(Label{Value: 1, Entity: fmt.Sprintf("machine-%07d", i/10), Time: t0.Add(time.Duration(i) * time.Millisecond)}); err != nil {
				b.Fatal(err)
			}
		}
		j.entities.seal()
		tenEach := heapInUse()
		b.StartTimer()
		start := time.Now()
		for i := range n {
			if err := j.prediction(Prediction{ID: ids[i], Score: 0.5, ModelVersion: "v1", Entity: entities[i%len(entities)],
				WindowEnd: t0.Add(time.Duration(i) * time.Millisecond), ChallengerScore: 0.4, ChallengerVersion: "c1"}); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		preds := heapInUse()
		runtime.KeepAlive(ids)
		runtime.KeepAlive(entities)
		q := j.result()
		if q.Counts.Predictions != n || q.Counts.Labelled != n {
			b.Fatalf("counts %+v", q.Counts)
		}
		b.ReportMetric(float64(idLabels-base)/(n/2), "B/id-label")
		b.ReportMetric(float64(oneEach-idLabels)/n, "B/entity-label(1/entity)")
		b.ReportMetric(float64(tenEach-mid)/n, "B/entity-label(10/entity)")
		b.ReportMetric(float64(preds-tenEach)/n, "B/prediction")
		b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/prediction")
		runtime.KeepAlive(j)
	}
}
