package dataset

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

// profile opens and profiles an input as `streamscore monitor` does.
func profile(t testing.TB, c S3, input string) (*monitor.Statistics, error) {
	t.Helper()
	ctx := t.Context()
	objs, err := Open(ctx, c, input)
	if err != nil {
		return nil, err
	}
	p, err := Profile(ctx, objs, monitor.Options{})
	if err != nil {
		return nil, err
	}
	return p.Statistics(), nil
}

func profileOf(t testing.TB, c S3, input string) *monitor.Statistics {
	t.Helper()
	s, err := profile(t, c, input)
	if err != nil {
		t.Fatalf("profile of %s: %v", input, err)
	}
	return s
}

func feature(t *testing.T, s *monitor.Statistics, name string) *monitor.Feature {
	t.Helper()
	for i := range s.Features {
		if s.Features[i].Name == name {
			return &s.Features[i]
		}
	}
	t.Fatalf("statistics have no feature %q", name)
	return nil
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func equalJSON(t *testing.T, a, b func(w io.Writer) error) bool {
	t.Helper()
	var x, y bytes.Buffer
	if err := a(&x); err != nil {
		t.Fatal(err)
	}
	if err := b(&y); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// machines is a CSV of n rows: a fractional temperature, a fractional
// vibration with every 50th cell empty, an integral rpm and a string
// machine.
func machines(n int) []byte {
	var b bytes.Buffer
	b.WriteString("temperature,vibration,rpm,machine\n")
	names := []string{"press", "lathe", "mill"}
	for i := range n {
		vib := fmt.Sprintf("%.3f", float64(i%17)/8+0.001)
		if i%50 == 0 {
			vib = ""
		}
		fmt.Fprintf(&b, "%.2f,%s,%d,%s\n", 70.01+float64(i%41)/4, vib, 1400+i%200, names[i%3])
	}
	return b.Bytes()
}

func writeFile(t testing.TB, path string, content []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProfileCSV: a CSV's columns become features in their order, typed as
// Model Monitor infers CSV columns, with every row counted and empty
// cells missing.
func TestProfileCSV(t *testing.T) {
	s := profileOf(t, nil, writeFile(t, filepath.Join(t.TempDir(), "m.csv"), machines(500)))
	if s.Dataset.ItemCount != 500 {
		t.Errorf("item_count = %d, want 500", s.Dataset.ItemCount)
	}
	var names []string
	for _, f := range s.Features {
		names = append(names, f.Name)
	}
	if w := []string{"temperature", "vibration", "rpm", "machine"}; !slices.Equal(names, w) {
		t.Fatalf("features = %q, want %q (the CSV's columns in order)", names, w)
	}
	for name, kind := range map[string]monitor.Kind{"temperature": monitor.Fractional, "vibration": monitor.Fractional,
		"rpm": monitor.Integral, "machine": monitor.String} {
		if f := feature(t, s, name); f.InferredType != kind {
			t.Errorf("%s: inferred_type %s, want %s", name, f.InferredType, kind)
		}
	}
	if v := feature(t, s, "vibration").NumericalStatistics; v == nil || v.Common.NumMissing != 10 || v.Common.NumPresent != 490 {
		t.Errorf("vibration: %+v, want 490 present and the 10 empty cells missing", v)
	}
	if m := feature(t, s, "machine").StringStatistics; m == nil || m.DistinctCount != 3 {
		t.Errorf("machine: %+v, want 3 distinct values", m)
	}
}

// TestProfileGzipCSV: a gzip'd CSV reads as the CSV it holds.
func TestProfileGzipCSV(t *testing.T) {
	dir := t.TempDir()
	src := machines(2000)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(src)
	zw.Close()
	plain := profileOf(t, nil, writeFile(t, filepath.Join(dir, "m.csv"), src))
	zipped := profileOf(t, nil, writeFile(t, filepath.Join(dir, "m.csv.gz"), b.Bytes()))
	if !equalJSON(t, plain.WriteJSON, zipped.WriteJSON) {
		t.Error("the statistics of a gzip'd CSV differ from those of the CSV")
	}
}

// TestProfileStatisticsParts: a directory of statistics.json parts (what
// the in-stream monitor's workers write per period) merges into the
// statistics of the union: counts and moments exactly, quantiles within
// the sketch's bound.
func TestProfileStatisticsParts(t *testing.T) {
	dir := t.TempDir()
	whole := profileOf(t, nil, writeFile(t, filepath.Join(dir, "all", "m.csv"), machines(3000)))
	src := machines(3000)
	lines := bytes.SplitAfter(src, []byte("\n"))
	header := lines[0]
	for i, part := range [][][]byte{lines[1:1001], lines[1001:3001]} {
		csvPart := append(append([]byte{}, header...), bytes.Join(part, nil)...)
		st := profileOf(t, nil, writeFile(t, filepath.Join(dir, "csv", fmt.Sprintf("p%d.csv", i)), csvPart))
		var b bytes.Buffer
		if err := st.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "parts", fmt.Sprintf("worker-%d.json", i)), b.Bytes())
	}
	merged := profileOf(t, nil, filepath.Join(dir, "parts"))
	if merged.Dataset.ItemCount != whole.Dataset.ItemCount {
		t.Errorf("item_count %d, want %d", merged.Dataset.ItemCount, whole.Dataset.ItemCount)
	}
	for _, name := range []string{"temperature", "vibration", "rpm"} {
		m, w := feature(t, merged, name).NumericalStatistics, feature(t, whole, name).NumericalStatistics
		if m.Common != w.Common || !near(m.Sum, w.Sum) || !near(m.Mean, w.Mean) || !near(m.StdDev, w.StdDev) || m.Min != w.Min || m.Max != w.Max {
			t.Errorf("%s merged from parts: %+v, want the whole's %+v", name, m, w)
		}
	}
	if got := feature(t, merged, "machine").StringStatistics.DistinctCount; got != 3 {
		t.Errorf("machine: %v distinct values, want 3", got)
	}
	// A CSV among the parts is refused, naming both files' formats.
	writeFile(t, filepath.Join(dir, "parts", "x.csv"), src)
	if _, err := profile(t, nil, filepath.Join(dir, "parts")); err == nil || !strings.Contains(err.Error(), "an input is all of one format") {
		t.Errorf("a CSV among statistics parts: %v, want a refusal", err)
	}
}

// TestProfileBadInput: every refusal names the file, and for CSV the line.
func TestProfileBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeFile(t, filepath.Join(dir, name), []byte(content)) }
	a := write("parts/a.csv", "x,y\n1,2\n")
	b := write("parts/b.csv", "x,z\n1,2\n")
	mixedCSV := write("mixed/a.csv", "temp_mean\n1\n")
	r := resultRows{n: 10}
	rec := r.batch(t, 0, r.n)
	defer rec.Release()
	mixedPq := filepath.Join(dir, "mixed", "b.parquet")
	writeParquet(t, mixedPq, rec)
	if err := os.MkdirAll(filepath.Join(dir, "none", "_temporary"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("none/_temporary/x.csv", "a\n1\n")
	for _, c := range []struct {
		input, want string
	}{
		{"testdata/ragged.csv", "testdata/ragged.csv:3: 3 fields, the header has 4"},
		{write("quote.csv", "a,b\n1,2\n3,\"x\"y\n"), dir + "/quote.csv:3:"},
		{write("empty.csv", ""), dir + "/empty.csv: empty"},
		{write("headerless.csv", "1.5,2\n3,4\n"), dir + "/headerless.csv:1: the first line looks like data"},
		{write("twice.csv", "a,b,a\n1,2,3\n"), dir + `/twice.csv: column "a" appears twice`},
		{write("header-only.csv", "a,b\n"), dir + "/header-only.csv: no rows to profile"},
		{filepath.Join(dir, "parts"), b + `: column "z" is not in ` + a},
		{filepath.Join(dir, "mixed"), mixedPq + " is Parquet but " + mixedCSV + " is CSV"},
		{filepath.Join(dir, "none"), dir + "/none: no files in the directory"},
		{write("bad.parquet", "not parquet at all"), dir + "/bad.parquet: not a readable Parquet file"},
		{filepath.Join(dir, "absent.csv"), dir + "/absent.csv: no such file"},
		{"", "no input"},
		{"s3://", "s3://: no bucket"},
		{"s3://bucket/key.csv", "s3://bucket/key.csv: no S3 client"},
	} {
		_, err := profile(t, nil, c.input)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("profile of %q: %v, want an error with %q", c.input, err, c.want)
		}
	}
}

// TestOpenSkipsHidden: a directory's files are read in name order, below
// any depth, leaving out names Hive, Spark and Athena leave out.
func TestOpenSkipsHidden(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.csv", "a/2.csv", "a/1.csv", "_SUCCESS", ".part.crc", "_temporary/0/x.csv", "a/.hidden/y.csv"} {
		writeFile(t, filepath.Join(dir, f), []byte("x\n1\n"))
	}
	objs, err := Open(t.Context(), nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, strings.TrimPrefix(o.Name(), dir+"/"))
	}
	if want := []string{"a/1.csv", "a/2.csv", "b.csv"}; !slices.Equal(got, want) {
		t.Errorf("objects = %q, want %q", got, want)
	}
}

// FuzzProfile: whatever bytes an input holds, reading it either fails
// with an error naming the file or yields statistics that
// monitor.ReadStatistics accepts back from their JSON, and never panics.
func FuzzProfile(f *testing.F) {
	src := machines(40)
	f.Add(src)
	if ragged, err := os.ReadFile("testdata/ragged.csv"); err == nil {
		f.Add(ragged)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(src[:300])
	zw.Close()
	f.Add(gz.Bytes())
	f.Add([]byte("a,b\n\"x\"\"y\",\n,\n"))
	f.Add([]byte("\uFEFFa\ntrue\nfalse\n1e308\n-0\n"))
	f.Add([]byte("A\n1e200\n000")) // squared deviations overflow float64
	pq := filepath.Join(f.TempDir(), "seed.parquet")
	r := resultRows{n: 40}
	rec := r.batch(f, 0, r.n)
	writeParquet(f, pq, rec)
	rec.Release()
	if b, err := os.ReadFile(pq); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj := Object{name: "fuzz", open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}}
		prof, err := Profile(t.Context(), []Object{obj}, monitor.Options{})
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		var js bytes.Buffer
		if err := prof.Statistics().WriteJSON(&js); err != nil {
			t.Fatalf("statistics of an accepted input do not encode: %v", err)
		}
		if _, err := monitor.ReadStatistics(&js, "statistics.json"); err != nil {
			t.Fatalf("statistics of an accepted input are refused: %v\n%s", err, js.Bytes())
		}
	})
}
