package dataset

// Reading predictions from Parquet: the S3 sink's results, by the sinks'
// own column names and row rule, or any flat Parquet with an inference_id
// and a score column. Only those columns and the two row flags are
// decoded, one batch at a time.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/streamscore/streamscore/sinks"
)

// predictionsParquet reads the predictions of one Parquet file: the id
// (result_id, or inference_id in a file that is not ours), the score, and
// where present model_version, processing_time, entity, window_end and
// the shadow challenger's challenger_score and challenger_model_version;
// rows MonitorSkip leaves out are counted, not handed over.
func (rd *reader) predictionsParquet(name string, f parquet.ReaderAtSeeker, fn func(Prediction) error) error {
	var fr *pqarrow.FileReader
	var sc *arrow.Schema
	err := guard(name, func() error {
		pf, err := file.NewParquetReader(f)
		if err != nil {
			return fmt.Errorf("%s: not a readable Parquet file: %w", name, err)
		}
		fr, err = pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
		if err != nil {
			pf.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		sc, err = fr.Schema()
		if err != nil {
			pf.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer fr.ParquetReader().Close()

	idCol := sinks.ColResultID
	if len(sc.FieldIndices(idCol)) == 0 {
		idCol = ColInferenceID
	}
	// The id and the score are required; the rest are read when there.
	wanted := []string{idCol, sinks.ColScore, sinks.ColModelVersion, sinks.ColProcessingTime, sinks.ColUpdate, sinks.ColPartial,
		sinks.ColEntity, sinks.ColWindowEnd, sinks.ColChallengerScore, sinks.ColChallengerModelVersion}
	var leaves []int
	for k, want := range wanted {
		idx := sc.FieldIndices(want)
		switch {
		case len(idx) == 0 && k < 2:
			return fmt.Errorf("%s: no %q column (columns: %s): want the S3 sink's results (%s, %s) or a Parquet file with %s and %s",
				name, want, strings.Join(fieldNames(sc), ", "), sinks.ColResultID, sinks.ColScore, ColInferenceID, sinks.ColScore)
		case len(idx) == 0:
			continue
		case len(idx) > 1:
			return fmt.Errorf("%s: column %q appears twice", name, want)
		}
		sf := fr.Manifest.Fields[idx[0]]
		if !sf.IsLeaf() {
			return fmt.Errorf("%s: column %q is %s, not a flat column", name, want, sf.Field.Type)
		}
		leaves = append(leaves, sf.ColIndex)
	}
	var rr pqarrow.RecordReader
	if err := guard(name, func() (err error) {
		rr, err = fr.GetRecordReader(rd.ctx, leaves, nil)
		return err
	}); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer rr.Release()

	var row int64 // rows of the file before the batch
	for {
		var rec arrow.RecordBatch
		if err := guard(name, func() error {
			if rr.Next() {
				rec = rr.RecordBatch()
			}
			return nil
		}); err != nil {
			return err
		}
		if rec == nil {
			break
		}
		if err := rd.predictionsBatch(name, idCol, rec, row, fn); err != nil {
			return err
		}
		row += rec.NumRows()
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// predictionsBatch hands over one batch's predictions; row is the file's
// row count before it, so a bad row is named by its place in the file.
func (rd *reader) predictionsBatch(name, idCol string, rec arrow.RecordBatch, row int64, fn func(Prediction) error) error {
	col := func(n string) arrow.Array {
		if idx := rec.Schema().FieldIndices(n); len(idx) == 1 {
			return rec.Column(idx[0])
		}
		return nil
	}
	id, err := textAt(col(idCol), true)
	if err != nil {
		return fmt.Errorf("%s: column %q %w", name, idCol, err)
	}
	score, err := numberAt(col(sinks.ColScore))
	if err != nil {
		return fmt.Errorf("%s: column %q %w", name, sinks.ColScore, err)
	}
	text := func(n string) (func(int) string, error) {
		a := col(n)
		if a == nil {
			return func(int) string { return "" }, nil
		}
		v, err := textAt(a, false)
		if err != nil {
			return nil, fmt.Errorf("%s: column %q %w", name, n, err)
		}
		return v, nil
	}
	version, err := text(sinks.ColModelVersion)
	if err != nil {
		return err
	}
	entity, err := text(sinks.ColEntity)
	if err != nil {
		return err
	}
	chVersion, err := text(sinks.ColChallengerModelVersion)
	if err != nil {
		return err
	}
	chScore := func(int) float64 { return math.NaN() }
	if a := col(sinks.ColChallengerScore); a != nil {
		if chScore, err = numberAt(a); err != nil {
			return fmt.Errorf("%s: column %q %w", name, sinks.ColChallengerScore, err)
		}
	}
	written, err := timeAt(col(sinks.ColProcessingTime))
	if err != nil {
		return fmt.Errorf("%s: column %q %w", name, sinks.ColProcessingTime, err)
	}
	windowEnd, err := timeAt(col(sinks.ColWindowEnd))
	if err != nil {
		return fmt.Errorf("%s: column %q %w", name, sinks.ColWindowEnd, err)
	}
	idArr := col(idCol)
	skip, _ := sinks.MonitorSkip(rec)
	for i := range int(rec.NumRows()) {
		if skip != nil && skip(i) {
			rd.stats.LeftOut++
			continue
		}
		if idArr.IsNull(i) || id(i) == "" {
			if err := rd.bad(&RecordError{File: name, Row: row + int64(i) + 1, Column: idCol, Err: errors.New("null or empty")}); err != nil {
				return err
			}
			continue
		}
		p := Prediction{ID: id(i), Score: score(i), ModelVersion: version(i), Written: written(i),
			Entity: entity(i), WindowEnd: windowEnd(i), ChallengerScore: chScore(i), ChallengerVersion: chVersion(i)}
		if err := fn(p); err != nil {
			return err
		}
		rd.stats.Records++
		if err := rd.tick(); err != nil {
			return err
		}
	}
	return nil
}

// timeAt reads a timestamp column; a null, or no column (a nil a), reads
// as the zero time.
func timeAt(a arrow.Array) (func(int) time.Time, error) {
	if a == nil {
		return func(int) time.Time { return time.Time{} }, nil
	}
	ts, ok := a.(*array.Timestamp)
	if !ok {
		return nil, fmt.Errorf("has type %s, want a timestamp", a.DataType())
	}
	unit := ts.DataType().(*arrow.TimestampType).Unit
	return func(i int) time.Time {
		if ts.IsNull(i) {
			return time.Time{}
		}
		return ts.Value(i).ToTime(unit)
	}, nil
}

// textAt reads a text column: strings as they are, bytes (result_id's 16)
// as lowercase hex when hexBytes. Values are copied out of the batch, so
// a caller may keep them after it is released. A null reads as "".
func textAt(a arrow.Array, hexBytes bool) (func(int) string, error) {
	null := func(i int, v func(int) string) string {
		if a.IsNull(i) {
			return ""
		}
		return v(i)
	}
	switch c := a.(type) {
	case *array.String:
		return func(i int) string { return null(i, func(i int) string { return strings.Clone(c.Value(i)) }) }, nil
	case *array.LargeString:
		return func(i int) string { return null(i, func(i int) string { return strings.Clone(c.Value(i)) }) }, nil
	case *array.FixedSizeBinary:
		if hexBytes {
			return func(i int) string { return null(i, func(i int) string { return hex.EncodeToString(c.Value(i)) }) }, nil
		}
	case *array.Binary:
		if hexBytes {
			return func(i int) string { return null(i, func(i int) string { return hex.EncodeToString(c.Value(i)) }) }, nil
		}
	}
	return nil, fmt.Errorf("has type %s, want text", a.DataType())
}

// numberAt reads a numeric column as float64; a null reads as NaN.
func numberAt(a arrow.Array) (func(int) float64, error) {
	var v func(int) float64
	switch c := a.(type) {
	case *array.Float64:
		v = func(i int) float64 { return c.Value(i) }
	case *array.Float32:
		v = func(i int) float64 { return float64(c.Value(i)) }
	case *array.Int64:
		v = func(i int) float64 { return float64(c.Value(i)) }
	case *array.Int32:
		v = func(i int) float64 { return float64(c.Value(i)) }
	default:
		return nil, fmt.Errorf("has type %s, want a number", a.DataType())
	}
	return func(i int) float64 {
		if a.IsNull(i) {
			return math.NaN()
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
