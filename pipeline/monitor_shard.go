package pipeline

import (
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
)

// checkpointed reports whether a chain resumes from a checkpoint (a
// sequence number) rather than a sentinel (TRIM_HORIZON, LATEST,
// AT_TIMESTAMP): where the shard's data begins for this application.
func checkpointed(p shardpos.Position) bool {
	return p.Sequence != "" && strings.Trim(p.Sequence, "0123456789") == ""
}

// startMonitors tells the stream's monitors where a fresh chain's data
// begins in event time: the earliest event of its first decoded batch.
// Windows that began before it hold only what the stream has of them (a
// stream's first minute, a trim horizon), which no baseline describes;
// the monitors leave them out. A chain resuming from a checkpoint replays
// every open window whole, so nothing of it is left out.
func (st *shardState) startMonitors(rec arrow.RecordBatch) {
	ts, ok := rec.Column(1).(*array.Timestamp) // the decoder's event time (windowing.Schema.ArrowSchema)
	if !ok || ts.Len() == 0 {
		return
	}
	first := ts.Value(0)
	for i := 1; i < ts.Len(); i++ {
		first = min(first, ts.Value(i))
	}
	at := time.Unix(0, int64(first)).UTC()
	for _, m := range st.plan.monitors {
		m.started(st.shard, at)
	}
}

// started records where a fresh chain of a shard begins (startMonitors).
func (m *monitorSink) started(shard string, at time.Time) {
	select {
	case m.in <- monitorMsg{shard: shard, from: at}:
	case <-m.stop:
	}
}

// partialStart returns which rows of a results batch began before their
// shard's data (shardProgress.from), or nil when none can have. One
// closure per batch, none per row.
func partialStart(rec arrow.RecordBatch, from time.Time) func(int) bool {
	if from.IsZero() {
		return nil
	}
	idx := rec.Schema().FieldIndices(sinks.ColWindowStart)
	if len(idx) == 0 {
		return nil
	}
	ws, ok := rec.Column(idx[0]).(*array.Timestamp)
	if !ok {
		return nil
	}
	cut := arrow.Timestamp(from.UnixNano())
	return func(i int) bool { return ws.IsValid(i) && ws.Value(i) < cut }
}
