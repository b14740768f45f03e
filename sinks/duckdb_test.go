package sinks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// duckdbQuery runs sql with DuckDB through testdata/duckdb-query.js and
// returns the rows.
func duckdbQuery(t *testing.T, sql string) []map[string]any {
	t.Helper()
	modules, err := filepath.Abs("../devstack/node/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modules, "@duckdb", "node-api")); err != nil {
		t.Fatalf("@duckdb/node-api is not installed in %s (run `streamscore dev install`): %v", modules, err)
	}
	cmd := exec.Command("node", "testdata/duckdb-query.js", sql)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s\nquery: %s", err, stderr.String(), sql)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output %q: %v", out, err)
	}
	return rows
}

// download copies every object under prefix into dir, keeping the keys as
// paths, so a reader sees the Hive partitions as they are in S3.
func download(t *testing.T, c *s3.Client, bucket, prefix, dir string) {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	for _, key := range listKeys(t, c, bucket, prefix) {
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestS3FilesReadByDuckDB reads the sink's files with DuckDB, a reader
// independent of arrow-go: the BYTE_STREAM_SPLIT doubles, the binary
// result_id, the uncompressed column and the Hive partitions must all come
// back as written, and result_id must be recomputable in SQL with the
// expression docs/sinks.md gives.
func TestS3FilesReadByDuckDB(t *testing.T) {
	if testing.Short() {
		t.Skip("needs node, DuckDB and the local S3 server")
	}
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	base := time.Date(2026, 11, 24, 9, 59, 0, 0, time.UTC)

	// Values a feature really takes, including the awkward ones.
	values := []float64{0, -0.5, 1e-300, 6.02214076e23, math.Pi, -273.15, 1 / 3.0, math.MaxFloat64}
	var rows []row
	for i, v := range values {
		rows = append(rows, row{entity: fmt.Sprintf("press-%02d", i), ws: base.Add(time.Duration(i%2) * time.Minute), feats: []float64{v, float64(i) + 0.25}, score: float64(i) / 8, model: "xgb-7"})
	}
	rec := resultRecord(t, 2, rows)
	defer rec.Release()

	s, err := NewS3(S3Options{Client: env.S3, Bucket: bucket, Prefix: "lake", SpoolDir: t.TempDir(), RollAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	a := newAcks()
	if err := s.Write(ctx, Batch{Stream: "factory", Shard: "shardId-000000000000", Range: Range{First: pos(1), Last: pos(8)}, Rec: rec, Ack: a.fn("b")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 30*time.Second, "b")

	dir := t.TempDir()
	download(t, env.S3, bucket, "lake/", dir)
	got := duckdbQuery(t, fmt.Sprintf(`
		SELECT stream, dt, hour, entity, lower(hex(result_id)) AS result_id,
		       substr(sha256(concat_ws(chr(31), stream, entity,
		           cast(epoch_ms(window_start) AS varchar), cast(epoch_ms(window_end) AS varchar),
		           coalesce(model_version, ''))), 1, 32) AS recomputed,
		       f00, f01, score, model_version
		FROM read_parquet('%s/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)
		ORDER BY entity`, filepath.ToSlash(dir)))
	if len(got) != len(rows) {
		t.Fatalf("DuckDB read %d rows, want %d: %v", len(got), len(rows), got)
	}
	for i, r := range rows {
		g := got[i]
		wantHour := fmt.Sprintf("%02d", r.ws.Hour())
		wantID := ResultID("factory", r.entity, r.ws, r.ws.Add(time.Minute), r.model)
		if g["stream"] != "factory" || g["dt"] != "2026-11-24" || g["hour"] != wantHour || g["entity"] != r.entity || g["model_version"] != r.model {
			t.Errorf("row %d: partitions/keys %v, want stream=factory dt=2026-11-24 hour=%s entity=%s", i, g, wantHour, r.entity)
		}
		if g["result_id"] != wantID {
			t.Errorf("row %d: result_id %v, want %s", i, g["result_id"], wantID)
		}
		if g["recomputed"] != wantID {
			t.Errorf("row %d: the documented SQL gives result_id %v, the sink wrote %s", i, g["recomputed"], wantID)
		}
		for col, want := range map[string]float64{"f00": r.feats[0], "f01": r.feats[1], "score": r.score} {
			if f, ok := g[col].(float64); !ok || f != want {
				t.Errorf("row %d: %s = %v (%T), want %v", i, col, g[col], g[col], want)
			}
		}
	}
	if t.Failed() {
		t.Logf("files: %s", strings.Join(listKeys(t, env.S3, bucket, "lake/"), ", "))
	}
}
