package sinks

// The S3 sink's object keys, as readers find them again: the quality
// monitor picks a period's files by partition and by the latest window
// end each key carries.

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ResultsPartition is the Hive partition of rows of stream whose window
// started at t: stream=<stream>/dt=YYYY-MM-DD/hour=HH/.
func ResultsPartition(stream string, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("stream=%s/dt=%04d-%02d-%02d/hour=%02d/", stream, t.Year(), t.Month(), t.Day(), t.Hour())
}

// ResultsPartitionTime is the hour of the partition a key relative to
// the sink's prefix starts with.
func ResultsPartitionTime(rel string) (time.Time, bool) {
	_, rest, ok := strings.Cut(rel, "/dt=")
	if !ok || len(rest) < len("2006-01-02/hour=15") {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01-02/hour=15", rest[:len("2006-01-02/hour=15")])
	return t, err == nil
}

// ResultKeyWindowEnd is the latest window end of the rows of a results
// file, from its key (…_<maxWindowEndMs>.parquet).
func ResultKeyWindowEnd(key string) (time.Time, bool) {
	base, ok := strings.CutSuffix(key, ".parquet")
	if !ok {
		return time.Time{}, false
	}
	i := strings.LastIndexByte(base, '_')
	if i < 0 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(base[i+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}
