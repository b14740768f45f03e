// Package monitor keeps data-drift statistics of a stream in SageMaker
// Model Monitor's formats: per-column profiles with Deequ's KLL sketch
// (the one Model Monitor writes), statistics.json read and written with
// Model Monitor's field names, and the comparisons of a period's
// statistics with a baseline. It makes no AWS calls and knows nothing of
// Kinesis; the pipeline feeds it batches and stores what it renders.
package monitor
