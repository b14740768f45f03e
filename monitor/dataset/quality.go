package dataset

// Reading what the model-quality monitor joins: predictions (a CSV with
// inference_id and score columns, or the S3 sink's Parquet results) and
// ground-truth labels (a CSV with inference_id and label columns, or Model
// Monitor's ground-truth JSON Lines), each gzip'd or not, from any location
// Open resolves. Records stream through a callback one at a time: a reader
// holds one line (at most maxRecordLine bytes) or one Parquet batch, never
// the file, so what the caller keeps is all the memory a large input costs.
// This file has the records, the options and CSV; format.go tells an
// object's format, quality_labels.go reads the labels and
// quality_parquet.go the S3 sink's results.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/sinks"
)

// Column names of the quality monitor's CSV inputs. A predictions CSV has
// ColInferenceID and a score column (sinks.ColScore) and may have the
// results' model_version, entity, window_end, challenger_score and
// challenger_model_version (sinks' names); a labels CSV has ColLabel and
// ColInferenceID, or entity (sinks.ColEntity) and ColTime, or all three.
// Other columns are ignored.
const (
	ColInferenceID = "inference_id"
	ColLabel       = "label"
	// ColTime is when a label's event happened (a failure, a
	// cancellation), RFC 3339: a label without an inference id judges its
	// entity's predictions by it (docs/quality.md, the horizon rule).
	ColTime = "time"
)

// maxRecordLine bounds one line of a CSV or JSON Lines input: a record of
// an id, a score and a version is well under it, and a file without line
// breaks (or a wrong file) must not be read into memory whole.
const maxRecordLine = 1 << 20

// Prediction is one model output of a predictions input, as the join with
// labels needs it.
type Prediction struct {
	// ID is the inference id labels are matched on: a CSV's inference_id,
	// or a result file's result_id as 32 lowercase hex digits, the form
	// alerts and the feature table show and labels carry back.
	ID string
	// Score is the model's output: the positive class's probability for
	// binary classification, the predicted value for regression. NaN when
	// the row has none (an empty cell, a null), which the quality
	// accumulators count as missing.
	Score float64
	// ModelVersion is the model that scored the row, so a caller can split
	// by it; "" when the input has no model_version column or the row none.
	ModelVersion string
	// Written is when the S3 sink wrote the row (its processing_time): of
	// two rows with one id, a replay's and the original, the readers' rule
	// (docs/sinks.md) keeps the one written first. Zero for CSV.
	Written time.Time
	// Entity is the key the row's window was computed for (the results'
	// entity column); "" when the input has none. Labels without an
	// inference id judge predictions by it.
	Entity string
	// WindowEnd is the end of the row's window (the results' window_end;
	// in a CSV, an optional RFC 3339 window_end column): the prediction's
	// time, by which a period holds it and a horizon judges it. Zero when
	// the input has none.
	WindowEnd time.Time
	// ChallengerScore is the shadow challenger's output for the same row
	// (challenger_score), NaN when the row has none.
	ChallengerScore float64
	// ChallengerVersion is the shadow challenger's model version
	// (challenger_model_version): "" when no challenger scored the row, so
	// a row it scored is one with a ChallengerVersion (its score may still
	// be missing: NaN, counted as the challenger's missing).
	ChallengerVersion string
}

// Label is one ground-truth label. Binary labels are 1 (the positive
// class) or 0. A label judges the prediction whose inference id is ID;
// without an ID, it judges by Entity and Time (JudgePeriod's horizon
// rule), and a reader gives no label with neither.
type Label struct {
	ID    string
	Value float64
	// Entity is the entity the label is about ("" when the input names
	// none): the streamscore.entity of a ground-truth record, or a CSV's
	// entity column.
	Entity string
	// Time is when the labelled event happened (zero when the input says
	// not): streamscore.time, or a CSV's time column.
	Time time.Time
}

// RecordError is a record of an input that could not be read: a line of
// a CSV or JSON Lines file, or a row of a Parquet file. It is what
// ReadOptions.Bad is given, so a caller may skip it and go on; a whole
// file that cannot be read is an ordinary error, never a RecordError.
type RecordError struct {
	File string
	// Line is the 1-based line of a CSV or JSON Lines file (the record's
	// first line when a quoted cell spans several); 0 for Parquet.
	Line int
	// Row is the 1-based row of a Parquet file; 0 for text.
	Row int64
	// Column is the column (CSV, Parquet) or field (JSON) at fault, when
	// one is.
	Column string
	Err    error
}

func (e *RecordError) Error() string {
	where := e.File + ":" + strconv.Itoa(e.Line)
	if e.Row > 0 {
		where = fmt.Sprintf("%s: row %d", e.File, e.Row)
	}
	if e.Column != "" {
		return fmt.Sprintf("%s: %s: %v", where, e.Column, e.Err)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// ReadOptions says what a read does with a record it cannot read.
type ReadOptions struct {
	// Bad is given each record that cannot be read. Returning nil skips
	// the record and reading goes on; returning an error stops the read
	// with it. Nil stops at the first bad record and returns it.
	Bad func(*RecordError) error
}

// LabelOptions are ReadLabels' options.
type LabelOptions struct {
	ReadOptions
	// Binary accepts only binary classification's labels: 1 or true for
	// the positive class, 0 or false for the negative; any other number
	// is a bad record.
	Binary bool
}

// ReadStats counts what one read went through.
type ReadStats struct {
	// Files is the number of objects read.
	Files int
	// Records is the number of records handed to the callback.
	Records int64
	// Bad is the number of bad records ReadOptions.Bad skipped.
	Bad int64
	// LeftOut is the number of Parquet result rows left out as the drift
	// monitor leaves them out (sinks.MonitorSkip): updates and partial rows.
	LeftOut int64
}

// reader is one read in progress: its options, counts and a context to
// check between records.
type reader struct {
	ctx   context.Context
	opts  ReadOptions
	stats ReadStats
}

// bad hands a bad record to the caller's rule.
func (rd *reader) bad(e *RecordError) error {
	if rd.opts.Bad == nil {
		return e
	}
	if err := rd.opts.Bad(e); err != nil {
		return err
	}
	rd.stats.Bad++
	return nil
}

// tick checks the context every few thousand records, so a long local read
// stops when the command is interrupted.
func (rd *reader) tick() error {
	if (rd.stats.Records+rd.stats.Bad)%4096 == 0 {
		return rd.ctx.Err()
	}
	return nil
}

// ReadPredictions reads every object of a predictions input (Open's) and
// calls fn with each prediction, in file order. An object is a CSV with a
// header line naming inference_id and score (model_version too, if it
// has one; other columns are ignored), or Parquet: the S3 sink's results
// (result_id, score, model_version, processing_time), or any flat Parquet
// with an inference_id and a score column. Of results, the rows the drift
// monitor leaves out are left out here too (sinks.MonitorSkip), for the
// same reason: an update revises a window already written, under the
// same result_id (the id hashes the stream, entity, window bounds and
// model version, not the content), so keeping it would give one inference
// two predictions; a partial row holds only part of a window's events
// (its result_id is also the whole window's). Each is counted in LeftOut.
// A result_id seen twice (a replay wrote the window again) is handed over
// twice; Prediction.Written tells which was written first.
//
// Both formats may be gzip'd. An error from fn stops the read and is
// returned as it is.
func ReadPredictions(ctx context.Context, objs []Object, opts ReadOptions, fn func(Prediction) error) (ReadStats, error) {
	rd := &reader{ctx: ctx, opts: opts}
	for _, o := range objs {
		if err := rd.object(o, func(name string, r *bufio.Reader) error {
			if jsonLines(r) {
				return fmt.Errorf("%s: JSON: want a predictions CSV with a header line naming %s and %s, or Parquet results", name, ColInferenceID, sinks.ColScore)
			}
			return rd.predictionsCSV(name, r, fn)
		}, func(name string, f *os.File) error {
			return rd.predictionsParquet(name, f, fn)
		}); err != nil {
			return rd.stats, err
		}
	}
	return rd.stats, nil
}

// object opens one object, counts it, and hands it to text or parquet by
// its format, told as Profile tells it (byFormat).
func (rd *reader) object(o Object, text func(string, *bufio.Reader) error, pq func(string, *os.File) error) error {
	if err := rd.ctx.Err(); err != nil {
		return err
	}
	rc, err := o.open(rd.ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	rd.stats.Files++
	return byFormat(o.name, rc, text, pq)
}

// jsonLines reports whether a text input is JSON Lines: its first
// character, after a byte-order mark and blank space, is "{". A CSV header
// cannot start so.
func jsonLines(br *bufio.Reader) bool {
	head, _ := br.Peek(1024)
	head = bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\uFEFF")), " \t\r\n")
	return len(head) > 0 && head[0] == '{'
}

// cells is a CSV input's header, resolved: the index of each wanted
// column, -1 for one it lacks.
type cells map[string]int

// get is the trimmed cell of column c, "" when the file has no such column.
func (col cells) get(rec []string, c string) string {
	if i := col[c]; i >= 0 {
		return strings.TrimSpace(rec[i])
	}
	return ""
}

// csvColumns are the columns a CSV input is read by: the header must name
// every column of at least one set of required, and may name optional.
type csvColumns struct {
	required [][]string
	optional []string
}

// want says what a header must name, for errors.
func (c csvColumns) want() string {
	alts := make([]string, len(c.required))
	for i, set := range c.required {
		alts[i] = strings.Join(set, " and ")
		if len(set) > 2 {
			alts[i] = strings.Join(set[:len(set)-1], ", ") + " and " + set[len(set)-1]
		}
	}
	return strings.Join(alts, ", or ")
}

// readCSV reads a CSV with a header line naming the columns cs requires,
// and calls row with each record and its first line. An error row
// returns as a *RecordError goes to the bad-record rule; any other stops
// the read.
func (rd *reader) readCSV(name string, r io.Reader, cs csvColumns, row func(rec []string, col cells, line int) error) error {
	lim := &lineLimit{r: r, name: name}
	cr := csv.NewReader(lim)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: empty: want a header line naming %s", name, cs.want())
	}
	if err != nil {
		return csvError(name, err, nil, 0)
	}
	col := cells{}
	for _, set := range cs.required {
		for _, want := range set {
			col[want] = -1
		}
	}
	for _, want := range cs.optional {
		col[want] = -1
	}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF"))
		j, ok := col[h]
		switch {
		case !ok:
		case j >= 0:
			return fmt.Errorf("%s:1: column %q appears twice", name, h)
		default:
			col[h] = i
		}
	}
	missing := ""
	for k, set := range cs.required {
		lacks := ""
		for _, want := range set {
			if col[want] < 0 {
				lacks = want
				break
			}
		}
		if lacks == "" {
			missing = ""
			break
		}
		if k == 0 {
			missing = lacks
		}
	}
	if missing != "" {
		return fmt.Errorf("%s:1: no %q column (the header is %s): want a header line naming %s", name, missing,
			strings.Join(header, ","), cs.want())
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := rd.bad(csvRecordError(name, pe, rec, len(header))); err != nil {
				return err
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if err := row(rec, col, line); err != nil {
			if re, ok := errors.AsType[*RecordError](err); ok {
				if err := rd.bad(re); err != nil {
					return err
				}
				continue
			}
			return err
		}
		rd.stats.Records++
		if err := rd.tick(); err != nil {
			return err
		}
	}
}

// csvRecordError is a CSV parse error as a bad record.
func csvRecordError(name string, pe *csv.ParseError, rec []string, want int) *RecordError {
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return &RecordError{File: name, Line: pe.StartLine, Err: fmt.Errorf("%d fields, the header has %d: %w", len(rec), want, pe.Err)}
	}
	return &RecordError{File: name, Line: pe.Line, Err: fmt.Errorf("byte %d: %w", pe.Column, pe.Err)}
}

// lineLimit fails a read once a line runs past maxRecordLine bytes, naming
// it: encoding/csv would otherwise gather any line into memory whole.
type lineLimit struct {
	r    io.Reader
	name string
	line int // lines ended so far
	run  int // bytes since the last line break
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for b := p[:n]; ; {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.run += len(b)
			break
		}
		if l.run+i > maxRecordLine {
			return 0, l.tooLong()
		}
		l.line++
		l.run, b = 0, b[i+1:]
	}
	if l.run > maxRecordLine {
		return 0, l.tooLong()
	}
	return n, err
}

func (l *lineLimit) tooLong() error {
	return fmt.Errorf("line %d: over %d KiB without a line break: not a CSV of predictions or labels", l.line+1, maxRecordLine>>10)
}

// predictionsColumns are a predictions CSV's: the id and the score, and
// the results' columns a period and a horizon judge by, if it has them.
var predictionsColumns = csvColumns{
	required: [][]string{{ColInferenceID, sinks.ColScore}},
	optional: []string{sinks.ColModelVersion, sinks.ColEntity, sinks.ColWindowEnd, sinks.ColChallengerScore, sinks.ColChallengerModelVersion},
}

func (rd *reader) predictionsCSV(name string, r io.Reader, fn func(Prediction) error) error {
	return rd.readCSV(name, r, predictionsColumns, func(rec []string, col cells, line int) error {
		bad := func(column string, err error) error {
			return &RecordError{File: name, Line: line, Column: column, Err: err}
		}
		id := col.get(rec, ColInferenceID)
		if id == "" {
			return bad(ColInferenceID, errors.New("empty"))
		}
		score, err := parseScore(rec[col[sinks.ColScore]])
		if err != nil {
			return bad(sinks.ColScore, err)
		}
		p := Prediction{ID: id, Score: score, ModelVersion: col.get(rec, sinks.ColModelVersion), Entity: col.get(rec, sinks.ColEntity),
			ChallengerScore: math.NaN(), ChallengerVersion: col.get(rec, sinks.ColChallengerModelVersion)}
		if p.WindowEnd, err = parseTime(col.get(rec, sinks.ColWindowEnd)); err != nil {
			return bad(sinks.ColWindowEnd, err)
		}
		if i := col[sinks.ColChallengerScore]; i >= 0 {
			if p.ChallengerScore, err = parseScore(rec[i]); err != nil {
				return bad(sinks.ColChallengerScore, err)
			}
		}
		return fn(p)
	})
}

// parseTime reads a CSV or JSON time: RFC 3339, fractions of a second
// optional; "" is no time (zero). A time is kept in UTC, and must fall
// where a time in Unix nanoseconds can (1678 to 2262), which a join
// compares it in.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (like 2026-12-03T07:00:00.123Z)", s)
	}
	if !time.Unix(0, t.UnixNano()).Equal(t) {
		return time.Time{}, fmt.Errorf("%q is out of range (years 1678 to 2262)", s)
	}
	return t.UTC(), nil
}

// parseScore reads a CSV score: a number; an empty cell is a missing score
// (NaN), as a null is in Parquet.
func parseScore(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// LoadQualityBaseline reads the model-quality constraints at where:
// constraints.json in a local directory or under an S3 prefix
// (s3://bucket/prefix, with or without the trailing slash; c may be nil
// for a directory), as LoadBaseline finds a drift baseline's. Without
// constraints.json, the constraints Model Monitor's baselining would
// suggest (quality.Suggest) for the statistics.json there, so statistics
// made elsewhere are enough. Errors name the file.
func LoadQualityBaseline(ctx context.Context, c S3, where string) (*quality.Constraints, error) {
	if where == "" {
		return nil, errors.New("no baseline: want a directory or an s3:// prefix holding " + ConstraintsFile)
	}
	b, name, err := baselineFile(ctx, c, where, ConstraintsFile)
	if err == nil {
		return quality.ReadConstraints(bytes.NewReader(b), name)
	}
	if !Absent(err) {
		return nil, err
	}
	sb, sname, serr := baselineFile(ctx, c, where, StatisticsFile)
	if Absent(serr) {
		return nil, fmt.Errorf("%w, and no %s to suggest constraints from", err, StatisticsFile)
	}
	if serr != nil {
		return nil, serr
	}
	st, err := quality.ReadStatistics(bytes.NewReader(sb), sname)
	if err != nil {
		return nil, err
	}
	return quality.Suggest(st), nil
}
