// Package monitor keeps data-drift statistics of a stream in SageMaker
// Model Monitor's formats and compares them with a baseline. It makes no
// AWS calls and knows nothing of Kinesis: the pipeline and the CLI feed it
// values and store what it renders.
//
// What it owns:
//   - KLL (kll.go): Deequ's quantile sketch, the one Model Monitor
//     serializes in statistics.json (k=2048, c=0.64, level h's items weigh
//     2^h, Deequ's capacities, compaction and deterministic coin), with a
//     guaranteed rank-error bound (ErrorBound).
//   - Profile (profile.go, render.go, arrow.go): one dataset's statistics,
//     mergeable across shards, workers and periods: item counts, present
//     and missing counts, Welford moments merged with Chan's formula
//     (std_dev is the population one, as Deequ's StandardDeviation), exact
//     min and max, a KLL per numeric column, categories per string column,
//     per-value type counts (Deequ's DataType patterns for CSV text), typed
//     fast paths for Arrow columns.
//   - statistics.json (statistics.go): the JSON types with Model Monitor's
//     field names, a validating reader whose errors name the file, the
//     feature and the field, a stable writer.
//   - constraints.json, the comparison and constraint_violations.json
//     (constraints.go, compare.go, distances.go, violations.go).
//
// Rules a reader of the output relies on:
//   - Missing: an Arrow null, an empty CSV cell, NaN and ±Inf. An
//     all-missing numeric column is written with num_present 0, the
//     moments as 0 and no distribution (JSON has no NaN); an Unknown
//     column that never had a value is inferred_type "Unknown" with
//     string_statistics carrying its counts.
//   - Categories are exact up to Options.MaxCategories (1000) distinct
//     values per column; values first seen after that count in num_present
//     but in no bucket, and distinct_count becomes a HyperLogLog estimate.
//   - type_counts is streamscore's one addition to a feature (Model
//     Monitor's readers ignore unknown fields): data_type_check needs the
//     current period's mix of types.
//
// Measured on the shared 2-core development machine (go test -bench
// -count 4, under other jobs' load; the tests' logs for memory):
//   - cost per value, no allocation in steady state: KLL.Update 48 ns,
//     ObserveFloat 59 ns (moments, extremes, type count and sketch),
//     ObserveArrow 56 ns on a float64 column with nulls, 27 ns on a string
//     column of 50 categories; ObserveText (the CSV path of a baseline,
//     classified and parsed) about 300 ns, most of it strconv.ParseFloat.
//     The sketch's cost is its sorts: a level of a few thousand items is
//     radix-sorted about three times faster than by slices.Sort, which
//     would put an update near 100 ns.
//   - memory: a numeric column holds about 75 KB once its sketch is full
//     (about 5,300 items of 8 bytes at a million values, bounded by
//     Deequ's budget, which grows by a few items per doubling, plus the
//     sort scratch); a string column about 70 bytes per category of 20
//     bytes, plus 16 KiB once it overflows; a boolean column its counters.
//     Statistics() builds a sorted view per sketch (16 bytes per item) and
//     frees it after rendering.
//   - accuracy: on a million values the rank error measured is at most
//     0.2% of the values, and ErrorBound, which no query can exceed, about
//     1.2%.
package monitor
