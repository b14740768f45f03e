package monitor

import (
	"bytes"
	"os"
	"testing"
)

// FuzzReadStatistics: the reader never panics, and what it accepts writes
// and reads back to the same bytes, and rebuilds into a profile.
func FuzzReadStatistics(f *testing.F) {
	f.Add([]byte(validStats))
	for _, name := range []string{"testdata/modelmonitor_statistics.json"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"version":0,"dataset":{"item_count":0},"features":[]}`))
	f.Add([]byte(`{"features":[{"name":"u","inferred_type":"Unknown","string_statistics":{"common":{"num_present":0,"num_missing":4},"distinct_count":0}}]}`))
	f.Add([]byte(`{"features":[{"name":"b","inferred_type":"Boolean","string_statistics":{"common":{"num_present":3.0},"distinct_count":2,"distribution":{"categorical":{"buckets":[{"value":"true","count":2.0}]}}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadStatistics(bytes.NewReader(data), "fuzz.json")
		if err != nil {
			return
		}
		var a bytes.Buffer
		if err := s.WriteJSON(&a); err != nil {
			t.Fatalf("accepted statistics do not write: %v", err)
		}
		back, err := ReadStatistics(bytes.NewReader(a.Bytes()), "again.json")
		if err != nil {
			t.Fatalf("written statistics do not read: %v\n%s", err, a.String())
		}
		var b bytes.Buffer
		if err := back.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() {
			t.Fatalf("round trip changed the file:\n%s\n%s", a.String(), b.String())
		}
		p, err := FromStatistics(back, Options{})
		if err != nil {
			t.Fatalf("accepted statistics do not rebuild a profile: %v", err)
		}
		var c bytes.Buffer
		if err := p.Statistics().WriteJSON(&c); err != nil {
			t.Fatalf("a profile rebuilt from accepted statistics renders invalid statistics: %v", err)
		}
	})
}
