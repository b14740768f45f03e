package sinks

import (
	"strconv"
	"testing"
	"time"
)

// The keys the sink writes are the keys readers parse: partition hour and
// latest window end come back from a key made by the sink's own rule.
func TestResultKeysRoundTrip(t *testing.T) {
	start := time.Date(2026, 12, 3, 7, 59, 30, 0, time.UTC)
	part := ResultsPartition("factory-sensors", start.In(time.FixedZone("CET", 3600)))
	if part != "stream=factory-sensors/dt=2026-12-03/hour=07/" {
		t.Fatalf("partition %q", part)
	}
	if h, ok := ResultsPartitionTime(part + "shardId-1_1.0_2.0_1.parquet"); !ok || !h.Equal(start.Truncate(time.Hour)) {
		t.Errorf("partition time %v %v, want %v", h, ok, start.Truncate(time.Hour))
	}
	end := start.Add(5 * time.Minute)
	key := "lake/sc/" + part + "shardId-000000000001_4963.0_4964.3_" + strconv.FormatInt(end.UnixMilli(), 10) + ".parquet"
	if got, ok := ResultKeyWindowEnd(key); !ok || !got.Equal(end) {
		t.Errorf("window end %v %v, want %v", got, ok, end)
	}
	for _, bad := range []string{"lake/x.json", "lake/sc/" + part + "noend.parquet", "lake/_x.parquet"} {
		if _, ok := ResultKeyWindowEnd(bad); ok {
			t.Errorf("%q parsed as a results key", bad)
		}
	}
	if _, ok := ResultsPartitionTime("stream=s/dt=2026-13-40/hour=99/"); ok {
		t.Error("a bad partition parsed")
	}
}
