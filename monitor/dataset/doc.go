// Package dataset finds and reads what the monitors are given from
// outside: the datasets `streamscore monitor` profiles, the baselines both
// it and the in-stream monitor judge against, and the predictions and
// labels `streamscore monitor quality` joins. The monitor and
// monitor/quality packages themselves do no I/O; this is their one reader,
// so the CLI and the pipeline accept the same locations and the same
// files, and refuse the rest with the same messages.
//
// What it owns:
//   - Locations (input.go): a local file or directory, an S3 object
//     (s3://bucket/key) or every object under an S3 prefix
//     (s3://bucket/prefix/); names starting with "_" or "." below a
//     directory or prefix are skipped, as Hive, Spark and Athena skip them.
//     S3 is reached through the small S3 interface the caller's client
//     satisfies; a local location needs no client. S3Object makes one
//     object of a key the caller listed itself (needing only GetObject).
//   - Profiling (profile.go): CSV with a header line (gzip'd too), typed as
//     Model Monitor infers CSV columns, and Parquet (the S3 sink's result
//     files or any flat Parquet: its monitored columns and rows as
//     sinks.MonitoredColumns and sinks.MonitorSkip say, as in the stream),
//     into one monitor.Profile. Errors name the file, and for CSV the line.
//   - Baselines (baseline.go): statistics.json and constraints.json from a
//     directory or an s3:// prefix, ours or Model Monitor's; without
//     constraints.json, the constraints Model Monitor would suggest.
//   - Quality inputs (quality.go, quality_labels.go, quality_parquet.go):
//     predictions (ReadPredictions: a CSV of inference_id and score, or the
//     S3 sink's Parquet results, its updates and partial rows left out as
//     the drift monitor leaves them; entity, window_end and a shadow
//     challenger's score and version too) and labels (ReadLabels: a CSV of
//     inference_id or entity and time, and label, or Model Monitor's
//     ground-truth JSON Lines with our entity-and-time extension), gzip'd
//     too, streamed one record at a time; a bad record is named by file
//     and line (or row) for the caller to skip or stop on. One monitoring
//     period's judgement (JudgePeriod, period.go and horizon.go): by id,
//     or by entity within a horizon, per model version as champion or
//     shadow challenger. Their
//     formats are told as Profile tells them (format.go). The model-quality
//     baseline (LoadQualityBaseline): constraints.json from a directory or
//     an s3:// prefix, or without it the constraints Model Monitor would
//     suggest for the statistics.json there.
//   - The names Model Monitor gives its files (StatisticsFile,
//     ConstraintsFile, ViolationsFile).
package dataset
