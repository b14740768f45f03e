// Package windowing turns raw JSON events into the windowed feature
// vectors that models score. It does no I/O: the pipeline hands it records
// and processing time, and takes back Arrow batches, late events and
// counters.
//
// # Decoding
//
// A Schema (from the pipeline config) names the entity field, the
// event-time field and its format, and the typed value fields. A Decoder
// scans each JSON record by hand and appends it straight into Arrow
// builders; NewRecordBatch cuts a batch. Missing or null values become
// Arrow nulls, never zero. A record that is not a JSON object, lacks the
// entity or the event time, or holds a value of the wrong type is not
// appended: Append returns a *DecodeError naming the field and the record's
// offset, for the dead-letter sink.
//
// # Source positions
//
// Windowing never sees Kinesis sequence numbers. The pipeline gives every
// record of a shard a uint64 offset that increases in the shard's order
// (Decoder.Append takes it; batches carry it in the ColOffset column) and
// maps offsets back to (sequence number, sub-sequence number) itself.
// Feature rows report the offsets of the events they count
// (offset_first, offset_last), LateEvent carries the late event's offset,
// and Operator.OldestNeeded reports the checkpoint bound.
//
// # Windows and watermark
//
// An Operator computes one WindowSpec over one shard; it is not safe for
// concurrent use. Tumbling and hopping windows are aligned to the Unix
// epoch and built from panes one slide long: an event is folded into one
// pane, whatever size/slide is, and a window is the merge of its panes when
// it is emitted. Session windows give each event the window [t, t+gap) and
// merge the overlapping ones of a key.
//
// The watermark is the largest event time seen minus the out-of-orderness,
// raised event by event, so what is emitted does not depend on how events
// were cut into batches. A window is emitted as soon as the watermark
// passes its end, for every key with events in it. When no record arrived
// for the idle timeout (processing time, passed in: nothing here reads the
// clock) and the caller says its source is idle (Advance), the watermark
// moves on with processing time: largest event time minus out-of-orderness
// plus the time since the last record. So an idle shard closes each window
// at most the idle timeout after it would have with events flowing. A gap
// between two batches of events is never taken for idleness (Process): it
// may be the reader's own stall, and its backlog is not late for it.
//
// # Late events
//
// An event whose window has been emitted but is within allowed lateness is
// counted, and the windows it changed are emitted again with update set
// (once per window per call, before the watermark next moves). An event
// whose every window is past its end plus allowed lateness is not counted
// anywhere: it comes back in Output.Late (with its row and offset) and is
// counted in Stats.LateDropped; the config's late policy says whether the
// pipeline dead-letters or ignores it. Nothing is dropped silently.
//
// # Checkpoints and replay
//
// OldestNeeded is the smallest offset of any event held by a pane
// (including panes kept only for allowed lateness), and of the event that
// set the largest event time, so that a replay rebuilds the same
// watermark. After a failover, replaying the records from OldestNeeded
// into a new Operator emits every window that was not yet emitted at the
// checkpoint with the same events and features, and hands back the same
// late events from the checkpoint on (TestReplayFromOldestNeeded). Two
// things a replay cannot rebuild, since they depend on events before the
// replay start: seconds_since_last of a key's first window after the
// failover (null or longer), and windows already emitted before the
// checkpoint, which the replay may emit again from the part of their
// events at or after OldestNeeded. How many update rows a window gets also
// depends on batching; its first emission and final state do not.
// Processing-time (idle) advances are not replayed either.
//
// # Memory
//
// Pane state is a run of float64 words in one slab, with only the
// statistics the features need (count, sum, Welford's M2, min, max, first
// and last with their times, count_if counters): 192 bytes per key per
// pane, metadata included, for the 10-aggregate sensor feature set of the
// benchmarks. distinct_count keeps a HyperLogLog per key per pane (sparse:
// about 10 bytes a value, dense: 16 KiB); quantile a compactor sketch per
// key per pane, 8 bytes a value, exact below 256 values and at most 256
// values per level above (see qsketch). Stats.StateBytes counts all of it,
// sketches and pools included, within 1% of the Go heap the operator holds
// for the factory example (BenchmarkFactoryStateBytes).
//
// Two limits bound it, per window per shard. MaxKeys bounds the keys held;
// MaxStateBytes (default DefaultMaxStateBytes) bounds the live state
// (Stats.LiveStateBytes). When a new key would exceed MaxKeys, or an event
// takes the live state past MaxStateBytes, the least recently updated keys
// (to within MaxKeys/8 events) are evicted, a warning is logged and
// Stats.EvictedKeys (and EvictedForBytes) counts them. Nothing an evicted
// key held is dropped silently: its windows still open are emitted early,
// flagged partial "evicted" (Stats.EarlyWindows, Stats.EvictedEvents), and
// its panes kept only for allowed lateness, whose rows were already
// emitted, are freed; a later late event for such a window starts a new
// state for the key and its row is flagged partial "late", so that it never
// supersedes the complete row. PartialEvicted states the readers' rule.
// The key of the event being counted is never evicted for the budget: one
// key larger than MaxStateBytes is kept, alone.
//
// # Event-time bounds
//
// Window durations are at most 2^60 ns (36 years) and event times within
// ±2^62 ns (the decoder's bounds; an event beyond them in a batch built
// elsewhere is handed back in Output.Late), so no window arithmetic
// overflows; FuzzOperatorTumbling, FuzzOperatorHopping and
// FuzzOperatorSession check it with arbitrary times and jumps.
//
// # Aggregates
//
// All features are float64 columns, named as in the config; a value that
// is undefined (mean of no values) is null. count counts events (or
// non-null values of its field), sum/mean/min/max/stddev/variance (sample,
// n-1) use non-null values, first and last are the values at the earliest
// and latest event time (ties: first and last to arrive), delta is last -
// first, rate is events per second of window without a field and
// (last-first)/(t_last-t_first) with one, count_if counts events whose
// field equals the configured value, distinct_count is a HyperLogLog
// estimate, quantile the nearest-rank quantile, exact below 256 values and
// within the rank error of qsRankBound above (2.3% of n at 10^4 values), missing_ratio the share of events
// where the field is missing or null, and seconds_since_last the time from
// the key's last event before the window to the window's first event.
// Booleans count as 0 and 1, timestamps as seconds since the epoch.
package windowing
