package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/shardpos"
)

// marks records what the low-water mark hands the checkpointer: the rule
// is tested without a consumer, a lease table or any server.
type marks struct {
	got  []shardpos.Position
	fail error
}

func (m *marks) MarkDurable(p shardpos.Position) error {
	if m.fail != nil {
		return m.fail
	}
	m.got = append(m.got, p)
	return nil
}

func (m *marks) last() string {
	if len(m.got) == 0 {
		return "none"
	}
	return m.got[len(m.got)-1].Sequence
}

// batch makes n records with sequence numbers seq, seq+1, ...
func batch(seq, n int) []consumer.Record {
	recs := make([]consumer.Record, n)
	for i := range recs {
		recs[i] = consumer.Record{SequenceNumber: fmt.Sprint(seq + i)}
	}
	return recs
}

// read handles a batch as the shard does: its records get offsets, the
// windows emit (sends, in flight to the sinks), then the windows' low is
// set (the oldest offset still held, or the end when none) and the mark
// advances.
func read(lw *lowWater, recs []consumer.Record, held func(end uint64) uint64, sends ...func()) {
	lw.add(recs, false)
	for _, send := range sends {
		send()
	}
	lw.setOpsLow(held(lw.end()))
	lw.advance()
}

// emit sends output 0's results of rows from offset low, keeping the id.
func emit(lw *lowWater, low uint64, id *uint64) func() {
	return func() { *id, _ = lw.send(0, low) }
}

func nothingHeld(end uint64) uint64 { return end }

func TestLowWaterOrders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, lw *lowWater, m *marks)
		want string // the last checkpoint written
	}{
		{
			name: "nothing in flight and no window: each read batch is durable at its last record",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				read(lw, batch(100, 3), nothingHeld)
				read(lw, batch(200, 2), nothingHeld)
			},
			want: "201",
		},
		{
			name: "an unacked batch holds the mark at the records before the rows it was computed from",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				var id uint64
				read(lw, batch(100, 3), nothingHeld, emit(lw, 0, &id)) // offsets 0..2, rows from 0 in flight
				read(lw, batch(200, 3), nothingHeld)                   // offsets 3..5
				if len(m.got) != 0 {
					t.Fatalf("marked %v while the batch of offset 0 is in flight", m.got)
				}
				if moved, _ := lw.ack(id, nil); !moved {
					t.Fatal("the ack of the only batch in flight did not move the mark")
				}
			},
			want: "202",
		},
		{
			name: "acks out of order: the older batch holds the mark until it is acked",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				var old, young uint64
				read(lw, batch(100, 2), nothingHeld, emit(lw, 0, &old))   // 0..1
				read(lw, batch(200, 2), nothingHeld, emit(lw, 2, &young)) // 2..3
				read(lw, batch(300, 2), nothingHeld)                      // 4..5
				if moved, _ := lw.ack(young, nil); moved || len(m.got) != 0 {
					t.Fatalf("the younger batch's ack moved the mark to %v past the older one in flight", m.got)
				}
				lw.ack(old, nil)
			},
			want: "301",
		},
		{
			name: "acks in order: the mark follows each one to the oldest row still in flight",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				var old, young uint64
				read(lw, batch(100, 2), nothingHeld, emit(lw, 0, &old))   // 0..1
				read(lw, batch(200, 2), nothingHeld, emit(lw, 2, &young)) // 2..3
				read(lw, batch(300, 2), nothingHeld)                      // 4..5
				lw.ack(old, nil)
				if m.last() != "101" {
					t.Fatalf("after the older ack the mark is %s, want 101 (the batch before offset 2)", m.last())
				}
				lw.ack(young, nil)
			},
			want: "301",
		},
		{
			name: "an open window holds its oldest record back",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				read(lw, batch(100, 2), nothingHeld)                      // 0..1 closed
				read(lw, batch(200, 2), func(uint64) uint64 { return 2 }) // 2..3 held
				read(lw, batch(300, 2), func(uint64) uint64 { return 2 }) // still held
				read(lw, batch(400, 1), func(uint64) uint64 { return 4 }) // window of 2..3 closed, 4.. open
			},
			want: "201",
		},
		{
			name: "empty batches (idle heartbeats) neither move nor break the mark",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				read(lw, nil, nothingHeld)
				if len(m.got) != 0 {
					t.Fatalf("an empty first batch marked %v", m.got)
				}
				read(lw, batch(100, 2), nothingHeld)
				read(lw, nil, nothingHeld)
				read(lw, nil, nothingHeld)
				if len(m.got) != 1 {
					t.Fatalf("heartbeats re-marked the same position: %v", m.got)
				}
			},
			want: "101",
		},
		{
			name: "a permanent sink failure stops the marks for good",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				var bad uint64
				read(lw, batch(100, 2), nothingHeld, emit(lw, 0, &bad))
				read(lw, batch(200, 2), nothingHeld)
				if _, first := lw.ack(bad, errors.New("sink: access denied")); !first {
					t.Fatal("the first failure was not reported as the first")
				}
				if _, first := lw.ack(bad, errors.New("again")); first {
					t.Fatal("a second failure was reported as the first")
				}
				read(lw, batch(300, 2), nothingHeld)
				if lw.failed() == nil {
					t.Fatal("failed() is nil after a permanent failure")
				}
			},
			want: "none",
		},
		{
			name: "a batch not accepted by the sink is settled with nil and holds nothing",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				var id uint64
				read(lw, batch(100, 2), nothingHeld, emit(lw, 0, &id), func() { lw.ack(id, nil) })
				read(lw, batch(200, 1), nothingHeld)
			},
			want: "200",
		},
		{
			name: "a parent's replayed tail is never this shard's checkpoint",
			run: func(t *testing.T, lw *lowWater, m *marks) {
				lw.add(batch(900, 3), true) // a parent's records, offsets 0..2
				lw.setOpsLow(lw.end())
				lw.advance()
				if len(m.got) != 0 {
					t.Fatalf("checkpointed %v inside a parent's tail", m.got)
				}
				read(lw, batch(100, 2), nothingHeld)
			},
			want: "101",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &marks{}
			lw := newLowWater(m, 1)
			tc.run(t, lw, m)
			if got := m.last(); got != tc.want {
				t.Fatalf("last checkpoint %s, want %s (all: %v)", got, tc.want, m.got)
			}
			if !slices.IsSortedFunc(m.got, func(a, b shardpos.Position) int { return a.Compare(b) }) {
				t.Fatalf("checkpoints went backwards: %v", m.got)
			}
		})
	}
}

// A lost lease (MarkDurable refusing) fails the shard: nothing more is
// marked, and the shard's next batch sees the error.
func TestLowWaterLeaseLost(t *testing.T) {
	t.Parallel()
	m := &marks{fail: consumer.ErrLeaseLost}
	lw := newLowWater(m, 1)
	read(lw, batch(100, 2), nothingHeld)
	if err := lw.failed(); !errors.Is(err, consumer.ErrLeaseLost) {
		t.Fatalf("failed() = %v, want ErrLeaseLost", err)
	}
	m.fail = nil
	read(lw, batch(200, 2), nothingHeld)
	if len(m.got) != 0 {
		t.Fatalf("marked %v after the lease was lost", m.got)
	}
}

// Each output's result Range starts where its previous one ended, so every
// record read is covered by exactly one Range per output, even when the
// outputs emit at different batches.
func TestLowWaterRanges(t *testing.T) {
	t.Parallel()
	lw := newLowWater(&marks{}, 2)
	lw.add(batch(100, 2), false)
	_, r0 := lw.send(0, 0)
	lw.add(batch(200, 2), false)
	_, r0b := lw.send(0, 0)
	_, r1 := lw.send(1, 0)
	for _, c := range []struct {
		name        string
		first, last string
		gotF, gotL  string
	}{
		{"output 0, first", "100", "101", r0.First.Sequence, r0.Last.Sequence},
		{"output 0, second", "200", "201", r0b.First.Sequence, r0b.Last.Sequence},
		{"output 1, both batches", "100", "201", r1.First.Sequence, r1.Last.Sequence},
	} {
		if c.gotF != c.first || c.gotL != c.last {
			t.Errorf("%s: range %s..%s, want %s..%s", c.name, c.gotF, c.gotL, c.first, c.last)
		}
	}
}
