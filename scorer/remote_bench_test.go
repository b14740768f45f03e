package scorer

import (
	"testing"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

// BenchmarkRemoteEncode measures the remote scorer's request encoding for
// 30 float64 features at full precision (5% missing): rows per request
// that fit in the 6 MB payload limit (split by encoded size, no row cap),
// bytes per row, encode throughput and allocations per row, per content
// type.
//
//	go test -run '^$' -bench RemoteEncode -benchmem ./scorer/
func BenchmarkRemoteEncode(b *testing.B) {
	const features, rows = 30, 25000
	cols := randomCols(features, rows, 0.05, 11)
	names := featureNames(features)
	rec := recordOf(b, names, cols)
	for _, tc := range []struct{ name, ct, inst string }{
		{"csv", remotespec.ContentCSV, ""},
		{"json", remotespec.ContentJSON, remotespec.InstanceArray},
		{"json_features", remotespec.ContentJSON, remotespec.InstanceFeatures},
		{"jsonlines", remotespec.ContentJSONLines, remotespec.InstanceArray},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := NewRemote(nil, RemoteConfig{Endpoint: "ep", Features: names, ContentType: tc.ct, Instance: tc.inst,
				MaxRowsPerRequest: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			sc := r.scratch.Get().(*remoteScratch)
			run := func() {
				if _, err := r.route(rec, rows, sc); err != nil {
					b.Fatal(err)
				}
				if err := r.encode(cols, sc); err != nil {
					b.Fatal(err)
				}
				for i := range sc.chunks {
					r.pool.Put(sc.chunks[i].body)
				}
			}
			run() // warm the pools
			most, total := 0, 0
			for _, ch := range sc.chunks {
				most = max(most, ch.hi-ch.lo)
				total += ch.body.Len()
				if ch.body.Len() > MaxPayloadBytes {
					b.Fatalf("a request of %d bytes", ch.body.Len())
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run()
			}
			b.ReportMetric(float64(most), "rows/request")
			b.ReportMetric(float64(total)/rows, "bytes/row")
			b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
