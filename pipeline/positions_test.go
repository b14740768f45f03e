package pipeline

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/shardpos"
)

// seqAt renders a Kinesis-like 56-digit sequence number for record i, so
// that sequence numbers order as the records do.
func seqAt(i uint64) string { return fmt.Sprintf("4959%052d", i*10) }

func batchOf(first uint64, n int) []consumer.Record {
	recs := make([]consumer.Record, n)
	for i := range recs {
		recs[i].SequenceNumber = seqAt(first + uint64(i))
	}
	return recs
}

// The checkpoint a position index allows never claims a record at or
// beyond the low-water mark, and it is exact at batch boundaries, however
// many spans were merged.
func TestPositionIndexNeverCheckpointsAheadOfTheMark(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	var x positionIndex
	var next uint64
	marked := uint64(0)
	var batchEnds []uint64
	for range 20 * maxSpans {
		n := 1 + rng.IntN(50)
		if rng.IntN(10) == 0 {
			n = 0 // heartbeats carry no records
		}
		x.add(next, batchOf(next, n), false)
		next += uint64(n)
		if n > 0 {
			batchEnds = append(batchEnds, next-1)
		}
		if x.len() > maxSpans {
			t.Fatalf("%d spans held, the bound is %d", x.len(), maxSpans)
		}
		// The low-water mark trails the tip by a random lag.
		low := next - min(next, uint64(rng.IntN(5000)))
		pos, upTo, ok := x.durableBelow(low)
		if !ok {
			continue
		}
		if upTo > low {
			t.Fatalf("checkpoint covers offsets below %d, but only those below %d are done", upTo, low)
		}
		if want := seqAt(upTo - 1); pos.Sequence != want {
			t.Fatalf("checkpoint position %s, want record %d's %s", pos.Sequence, upTo-1, want)
		}
		if upTo > marked {
			marked = upTo
			x.trim(upTo - 1)
		}
	}
	// A mark exactly at a recent batch end is exact.
	last := batchEnds[len(batchEnds)-1]
	if _, upTo, ok := x.durableBelow(last + 1); !ok || upTo != last+1 {
		t.Errorf("mark at the newest batch end: upTo %d ok %v, want %d", upTo, ok, last+1)
	}
}

func TestPositionIndexAt(t *testing.T) {
	var x positionIndex
	x.add(0, batchOf(0, 10), false)
	x.add(10, nil, false)
	x.add(10, batchOf(10, 5), false)
	for _, c := range []struct {
		off  uint64
		want string
	}{
		{0, seqAt(0)}, {9, seqAt(9)}, {10, seqAt(10)}, {14, seqAt(14)},
		{5, seqAt(0)}, // inside a batch: its first record, at or before
		{15, ""},      // not read yet
	} {
		if got := x.at(c.off).Sequence; got != c.want {
			t.Errorf("at(%d) = %q, want %q", c.off, got, c.want)
		}
	}
	x.trim(10)
	if got := x.at(3).Sequence; got != "" {
		t.Errorf("trimmed offset still resolves to %q", got)
	}
	if _, _, ok := x.durableBelow(12); ok {
		t.Error("a mark inside the only span left must wait for its end")
	}
}

// BenchmarkPositionsMemory measures what a shard holds to map offsets back
// to positions with a 25 h checkpoint lag at 100 records/s (a 24 h window
// with 1 h of allowed lateness), read as 5 batches a second: the index
// against one position per record, as the pipeline kept before. Reported as
// bytes per shard (heap in use after a GC, sequence strings included).
//
//	go test -run '^$' -bench PositionsMemory -benchtime 1x ./pipeline/
func BenchmarkPositionsMemory(b *testing.B) {
	const (
		perSecond = 100
		batches   = 5 // reads a second
		seconds   = 25 * 3600
	)
	// Records come from the reads with fresh sequence strings, as the SDK
	// returns them; both forms keep the strings they hold alive.
	read := func(first uint64) []consumer.Record {
		return batchOf(first, perSecond/batches)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	b.Run("per-record", func(b *testing.B) {
		for range b.N {
			before := heap()
			var positions []shardpos.Position
			var off uint64
			for range seconds * batches {
				for _, r := range read(off) {
					positions = append(positions, r.Position())
				}
				off += perSecond / batches
			}
			b.ReportMetric(float64(heap()-before), "B/shard")
			runtime.KeepAlive(positions)
		}
	})
	b.Run("index", func(b *testing.B) {
		for range b.N {
			before := heap()
			var x positionIndex
			var off uint64
			for range seconds * batches {
				x.add(off, read(off), false)
				off += perSecond / batches
			}
			b.ReportMetric(float64(heap()-before), "B/shard")
			runtime.KeepAlive(&x)
		}
	})
}
