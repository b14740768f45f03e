package scorer

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// addSeeds adds the tiny fixture models: small seeds keep the fuzzer fast
// (large ones make every minimisation crawl).
func addSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseModel: no input makes the model loaders panic, and a model that
// loads predicts finite margins and computes contributions without
// panicking.
func FuzzParseModel(f *testing.F) {
	addSeeds(f, "fuzz_tiny.json", "fuzz_tiny.ubj")
	f.Add([]byte(`{"streamscore_linear":1,"features":[{"name":"a","weight":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseModel(data)
		if err != nil {
			return
		}
		nf := len(m.Features())
		cols := make([][]float64, nf)
		for j := range cols {
			cols[j] = []float64{math.NaN(), 0, -1e30, 1e30, 0.5}
		}
		out := alloc(max(m.Outputs(), m.impl.marginOutputs()), 5)
		var s Scratch
		if err := m.Predict(cols, 5, out, &s); err != nil {
			t.Fatal(err)
		}
		if err := m.PredictMargins(cols, 5, out, &s); err != nil {
			t.Fatal(err)
		}
		// Contributions never panic; a model that has them gives one per
		// feature plus the bias.
		x := make([]float64, nf)
		for i := range 5 {
			for j := range x {
				x[j] = cols[j][i]
			}
			for k := range m.Outputs() {
				c, err := m.Contributions(nil, x, k, &s)
				if err == nil && len(c) != nf+1 {
					t.Fatalf("%d contributions for %d features", len(c), nf)
				}
			}
		}
	})
}

// FuzzUBJSON: the UBJSON decoder never panics, and what it produces is
// read by the JSON model reader without panicking.
func FuzzUBJSON(f *testing.F) {
	addSeeds(f, "fuzz_tiny.ubj")
	f.Add([]byte("{i\x01a[$d#i\x02\x3f\x80\x00\x00\x7f\xc0\x00\x00}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := ubjsonToJSON(data)
		if err != nil {
			return
		}
		var doc xgbDoc
		_ = decodeXGBoost(j, &doc)
	})
}

// FuzzFeatureCSV: the feature CSV reader never panics.
func FuzzFeatureCSV(f *testing.F) {
	f.Add([]byte("a,b\n1,\n,2.5\n"))
	f.Add([]byte("a,a\n1,2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadFeatureCSV(bytesReader(data), nil)
	})
}

// FuzzDecodeInstances: request bodies of every content type never panic the
// model server's decoder, every row it emits has one value per feature, none
// of them infinite, and decoding allocates at most twice the body plus a
// constant (the old decoder allocated ~74 times a JSON body).
func FuzzDecodeInstances(f *testing.F) {
	f.Add("text/csv", []byte("1,2\n,3\n"))
	f.Add("text/csv", []byte("1,inf\nnan,1e400\n"))
	f.Add("application/json", []byte(`{"instances":[[1,null],{"features":[1,2]},{"a":1}]}`))
	f.Add("application/json", []byte(`{"x":{"y":["]"]},"instances":[{"\u0061":1e308,"b":-0}]}`))
	f.Add("application/jsonlines", []byte("[1,2]\n{\"b\":3}\n"))
	features := []string{"a", "b"}
	index := featureIndex(features)
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		herr := decodeRows(ct, body, features, index, func(row []float64) *httpError {
			if len(row) != len(features) {
				t.Fatalf("row of %d values for %d features", len(row), len(features))
			}
			for _, v := range row {
				if math.IsInf(v, 0) {
					t.Fatalf("row %v holds an infinite value", row)
				}
			}
			return nil
		})
		runtime.ReadMemStats(&after)
		if herr != nil && herr.status != 400 && herr.status != 415 {
			t.Fatalf("status %d: %v", herr.status, herr)
		}
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(2*len(body)+64<<10); got > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes, over %d", len(body), got, limit)
		}
	})
}

// FuzzModelBounds: under tight limits, no model file (XGBoost JSON, UBJSON,
// model.tar.gz, linear JSON) makes loading allocate more than a bounded
// multiple of its bytes plus what the limits admit, and every model that
// loads is within its limits.
func FuzzModelBounds(f *testing.F) {
	addSeeds(f, "fuzz_tiny.json", "fuzz_tiny.ubj", "fidelity/model.tar.gz",
		"binary/fuzz_tiny.model", "binary/fuzz_tiny_dart.model", "binary/fuzz_tiny_gblinear.model",
		"fidelity/dart_binary_logistic.json", "lightgbm/go-lgbm/v4/ranking.txt")
	f.Add(chainModel(3, 12, 2))
	f.Add([]byte(`{"streamscore_linear":1,"features":[{"name":"a","weight":1}]}`))
	lim := ModelLimits{
		MaxFileBytes: 1 << 20, MaxTrees: 64, MaxNodes: 4096, MaxDepth: 16, MaxHeapBytes: 1 << 20,
		MaxTarMembers: 8, MaxTarBytes: 1 << 20, MaxTarMemberBytes: 512 << 10, MaxFeatures: 4096,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := ParseModel(data, WithLimits(lim))
		runtime.ReadMemStats(&after)
		// A gzip'd archive may expand to MaxTarBytes, which is then parsed
		// like any file of that size.
		bound := 64*uint64(len(data)) + 64*uint64(lim.MaxTarBytes)
		if got := after.TotalAlloc - before.TotalAlloc; got > bound {
			t.Fatalf("loading %d bytes allocated %d, over %d (err %v)", len(data), got, bound, err)
		}
		if err != nil {
			return
		}
		if m.info.TotalTrees > lim.MaxTrees || m.info.MaxDepth > lim.MaxDepth {
			t.Fatalf("%s model loaded past the limits: trees %d, depth %d", m.info.Kind, m.info.TotalTrees, m.info.MaxDepth)
		}
		fo, _ := m.impl.(*forest)
		if d, ok := m.impl.(*dartForest); ok {
			fo = d.forest
		}
		if fo != nil {
			if fo.heap > lim.MaxHeapBytes {
				t.Fatalf("loaded past the limits: heap %d", fo.heap)
			}
			kept := int64(len(fo.nodes))*8 + int64(len(fo.leaf))*4 + int64(len(fo.mean))*4
			if kept > fo.heap {
				t.Fatalf("compiled layout holds %d bytes, accounted %d", kept, fo.heap)
			}
		}
	})
}
