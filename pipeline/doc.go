// Package pipeline wires the consumer, windowing, scorer and sinks into a
// running scoring pipeline from a configuration: per shard, records are
// decoded, windowed, scored and delivered in order, and the shard's
// checkpoint follows the low-water mark (the oldest position still held by
// an open window or not yet acknowledged by every sink).
package pipeline
