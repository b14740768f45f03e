package training

// Decoding the window features of a results file, which monitor/dataset's
// prediction reader does not return: the id, write time, entity and window
// end to find the kept row, and the feature columns, one batch at a time.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/streamscore/streamscore/sinks"
)

// batchRows bounds a decoded batch: 8 192 rows of a few dozen doubles is
// a few MiB.
const batchRows = 8 << 10

// featureRow is one result row as the training set needs it. features
// is reused from row to row.
type featureRow struct {
	id        string
	written   int64
	entity    string
	windowEnd time.Time
	features  []string
}

// isFeatureColumn: a column the drift monitor profiles (sinks'
// MonitoredColumns) that is not a model output and that train.py can read
// as a number.
func isFeatureColumn(f arrow.Field) bool {
	n := f.Name
	if n == sinks.ColScore || strings.HasPrefix(n, sinks.ColScore+"_") || strings.HasPrefix(n, sinks.ColChallengerScore) {
		return false
	}
	switch f.Type.ID() {
	case arrow.STRING, arrow.LARGE_STRING:
		return false
	}
	return true
}

// readFeatures calls fn with each row of the file at path that is neither
// an update nor a partial row. *features are the feature columns: set
// from the first file read; a later file without one of them gives empty
// cells (train.py's NaN).
func readFeatures(ctx context.Context, path string, features *[]string, fn func(featureRow) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	pf, err := file.NewParquetReader(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: batchRows}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if *features == nil {
		var names []string
		for _, i := range sinks.MonitoredColumns(sc) {
			if isFeatureColumn(sc.Field(i)) {
				names = append(names, sc.Field(i).Name)
			}
		}
		if len(names) == 0 {
			return fmt.Errorf("%s: no feature columns (columns: %s)", path, strings.Join(fieldNames(sc), ", "))
		}
		*features = names
	}
	required := []string{sinks.ColResultID, sinks.ColWindowEnd, sinks.ColEntity}
	optional := []string{sinks.ColProcessingTime, sinks.ColUpdate, sinks.ColPartial}
	var leaves []int
	for k, n := range slicesConcat(required, optional, *features) {
		idx := sc.FieldIndices(n)
		switch {
		case len(idx) == 0 && k < len(required):
			return fmt.Errorf("%s: no %q column: not the S3 sink's results", path, n)
		case len(idx) == 0:
			continue
		}
		sf := fr.Manifest.Fields[idx[0]]
		if !sf.IsLeaf() {
			return fmt.Errorf("%s: column %q is %s, not a flat column", path, n, sf.Field.Type)
		}
		leaves = append(leaves, sf.ColIndex)
	}
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rr.Release()
	row := featureRow{features: make([]string, len(*features))}
	for rr.Next() {
		if err := featuresBatch(path, rr.RecordBatch(), *features, &row, fn); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func featuresBatch(path string, rec arrow.RecordBatch, features []string, row *featureRow, fn func(featureRow) error) error {
	col := func(n string) arrow.Array {
		if idx := rec.Schema().FieldIndices(n); len(idx) == 1 {
			return rec.Column(idx[0])
		}
		return nil
	}
	ids, ok := col(sinks.ColResultID).(*array.FixedSizeBinary)
	if !ok {
		return fmt.Errorf("%s: column %q has type %s, want the sink's 16 bytes", path, sinks.ColResultID, col(sinks.ColResultID).DataType())
	}
	entities, ok := col(sinks.ColEntity).(*array.String)
	if !ok {
		return fmt.Errorf("%s: column %q has type %s, want a string", path, sinks.ColEntity, col(sinks.ColEntity).DataType())
	}
	ends, err := timestamps(col(sinks.ColWindowEnd))
	if err != nil {
		return fmt.Errorf("%s: column %q %w", path, sinks.ColWindowEnd, err)
	}
	written, err := timestamps(col(sinks.ColProcessingTime))
	if err != nil {
		return fmt.Errorf("%s: column %q %w", path, sinks.ColProcessingTime, err)
	}
	cells := make([]func(int) string, len(features))
	for k, n := range features {
		if cells[k], err = cellsOf(col(n)); err != nil {
			return fmt.Errorf("%s: column %q %w", path, n, err)
		}
	}
	skip, _ := sinks.MonitorSkip(rec)
	for i := range int(rec.NumRows()) {
		if skip != nil && skip(i) || ids.IsNull(i) {
			continue
		}
		row.id = hex.EncodeToString(ids.Value(i))
		row.entity = entities.Value(i)
		row.windowEnd = time.Unix(0, ends(i)).UTC()
		row.written = written(i)
		for k := range cells {
			row.features[k] = cells[k](i)
		}
		if err := fn(*row); err != nil {
			return err
		}
	}
	return nil
}

// timestamps reads a timestamp column as Unix ns; a null or no column
// (nil a) reads as 0, the readers' "unknown".
func timestamps(a arrow.Array) (func(int) int64, error) {
	if a == nil {
		return func(int) int64 { return 0 }, nil
	}
	ts, ok := a.(*array.Timestamp)
	if !ok {
		return nil, fmt.Errorf("has type %s, want a timestamp", a.DataType())
	}
	unit := ts.DataType().(*arrow.TimestampType).Unit
	return func(i int) int64 {
		if ts.IsNull(i) {
			return 0
		}
		return ts.Value(i).ToTime(unit).UnixNano()
	}, nil
}

// cellsOf formats a feature column's values as CSV cells; a null, a NaN
// or no column (nil a) is an empty cell.
func cellsOf(a arrow.Array) (func(int) string, error) {
	if a == nil {
		return func(int) string { return "" }, nil
	}
	var v func(int) string
	switch c := a.(type) {
	case *array.Float64:
		v = func(i int) string { return formatNumber(c.Value(i)) }
	case *array.Float32:
		v = func(i int) string { return formatNumber(float64(c.Value(i))) }
	case *array.Int64:
		v = func(i int) string { return strconv.FormatInt(c.Value(i), 10) }
	case *array.Int32:
		v = func(i int) string { return strconv.FormatInt(int64(c.Value(i)), 10) }
	case *array.Int16:
		v = func(i int) string { return strconv.FormatInt(int64(c.Value(i)), 10) }
	case *array.Int8:
		v = func(i int) string { return strconv.FormatInt(int64(c.Value(i)), 10) }
	case *array.Uint64:
		v = func(i int) string { return strconv.FormatUint(c.Value(i), 10) }
	case *array.Uint32:
		v = func(i int) string { return strconv.FormatUint(uint64(c.Value(i)), 10) }
	case *array.Uint16:
		v = func(i int) string { return strconv.FormatUint(uint64(c.Value(i)), 10) }
	case *array.Uint8:
		v = func(i int) string { return strconv.FormatUint(uint64(c.Value(i)), 10) }
	case *array.Boolean:
		v = func(i int) string {
			if c.Value(i) {
				return "1"
			}
			return "0"
		}
	default:
		return nil, fmt.Errorf("has type %s, want a number or a bool", a.DataType())
	}
	return func(i int) string {
		if a.IsNull(i) {
			return ""
		}
		return v(i)
	}, nil
}

func fieldNames(sc *arrow.Schema) []string {
	out := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		out[i] = f.Name
	}
	return out
}

func slicesConcat(s ...[]string) []string {
	var out []string
	for _, x := range s {
		out = append(out, x...)
	}
	return out
}
