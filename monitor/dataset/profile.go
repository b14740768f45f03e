package dataset

// Reading an input into one monitor.Profile: CSV with a header (optionally
// gzip'd), Parquet (the S3 sink's result files, or any flat Parquet), or
// statistics.json documents with sketch data (the parts the in-stream
// monitor's workers write, merged again offline).

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/streamscore/streamscore/monitor"
	"github.com/streamscore/streamscore/sinks"
)

// Input formats; every object of one input must have the same.
const (
	formatCSV        = "CSV"
	formatParquet    = "Parquet"
	formatStatistics = "statistics.json"
)

// profiler folds the objects of one input into one profile. The first
// object fixes the columns; every later one must have the same names (in
// any order), so a prefix holding two layouts is refused, not mixed.
type profiler struct {
	opts   monitor.Options
	prof   *monitor.Profile
	first  string // the first object's name
	format string
	index  map[string]int // column name → the profile's column
	rows   int            // rows profiled, over every object
}

// Profile reads every object of an input (Open's) into one profile, with
// the monitor's options (zero: Model Monitor's). The objects must all be
// CSV, all Parquet or all statistics.json (*.json: merged, as the reducer
// merges a period's parts), with the same column names. An input without a
// single row is refused: it has nothing to baseline or to check.
func Profile(ctx context.Context, objs []Object, opts monitor.Options) (*monitor.Profile, error) {
	if len(objs) == 0 {
		return nil, errors.New("no files to profile")
	}
	p := &profiler{opts: opts}
	for _, o := range objs {
		if err := p.read(ctx, o); err != nil {
			return nil, err
		}
	}
	if p.rows == 0 {
		what := objs[0].name
		if len(objs) > 1 {
			what = fmt.Sprintf("%s and %d more files", what, len(objs)-1)
		}
		return nil, fmt.Errorf("%s: no rows to profile", what)
	}
	return p.prof, nil
}

// read profiles one object in the format byFormat tells: Parquet, or as
// text a statistics.json (a name ending in .json) or else a CSV.
func (p *profiler) read(ctx context.Context, o Object) error {
	rc, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	return byFormat(o.name, rc, func(name string, r *bufio.Reader) error {
		if strings.EqualFold(path.Ext(name), ".json") {
			return p.statistics(name, r)
		}
		return p.csv(name, r)
	}, func(name string, f *os.File) error {
		return p.parquet(ctx, name, f)
	})
}

// columns maps one object's columns onto the profile's, making the profile
// from the first object. Names must be unique and non-empty.
func (p *profiler) columns(name, format string, cols []monitor.Column) ([]int, error) {
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("%s: a column has no name", name)
		case seen[c.Name]:
			return nil, fmt.Errorf("%s: column %q appears twice", name, c.Name)
		}
		seen[c.Name] = true
	}
	idx := make([]int, len(cols))
	if p.prof == nil {
		p.prof = monitor.NewProfile(cols, p.opts)
		p.first, p.format = name, format
		p.index = make(map[string]int, len(cols))
		for i, c := range cols {
			p.index[c.Name], idx[i] = i, i
		}
		return idx, nil
	}
	if format != p.format {
		return nil, fmt.Errorf("%s is %s but %s is %s: an input is all of one format", name, format, p.first, p.format)
	}
	for i, c := range cols {
		j, ok := p.index[c.Name]
		if !ok {
			return nil, fmt.Errorf("%s: column %q is not in %s, the input's first file: the files of one input must have the same columns", name, c.Name, p.first)
		}
		idx[i] = j
	}
	if len(cols) != len(p.index) {
		for n := range p.index {
			if !seen[n] {
				return nil, fmt.Errorf("%s: no column %q, which %s, the input's first file, has: the files of one input must have the same columns", name, n, p.first)
			}
		}
	}
	return idx, nil
}

// statistics merges a statistics.json (ours or Model Monitor's) into the
// profile: a worker's part of a period, or a period's statistics. Its
// features must be the first object's, in the same order.
func (p *profiler) statistics(name string, r io.Reader) error {
	st, err := monitor.ReadStatistics(io.LimitReader(r, maxBaselineFile), name)
	if err != nil {
		return err
	}
	prof, err := monitor.FromStatistics(st, p.opts)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if p.prof == nil {
		p.prof, p.first, p.format = prof, name, formatStatistics
	} else if p.format != formatStatistics {
		return fmt.Errorf("%s is %s but %s is %s: an input is all of one format", name, formatStatistics, p.first, p.format)
	} else if err := p.prof.Merge(prof); err != nil {
		return fmt.Errorf("%s: %w (the input's first file is %s)", name, err, p.first)
	}
	p.rows += int(st.Dataset.ItemCount)
	return nil
}

// csv profiles a CSV file with a header line. Every cell goes through
// ObserveText, which infers the column's type as Model Monitor does; an
// empty cell is missing.
func (p *profiler) csv(name string, r io.Reader) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: empty: a CSV input starts with a header line naming the columns", name)
	}
	if err != nil {
		return csvError(name, err, nil, 0)
	}
	header = append([]string(nil), header...)
	header[0] = strings.TrimPrefix(header[0], "\uFEFF") // a byte-order mark from a spreadsheet export
	if looksLikeData(header) {
		return fmt.Errorf("%s:1: the first line looks like data (%s): a CSV input starts with a header line naming the columns", name, strings.Join(header, ","))
	}
	cols := make([]monitor.Column, len(header))
	for i, h := range header {
		cols[i] = monitor.Column{Name: h, Kind: monitor.Unknown}
	}
	idx, err := p.columns(name, formatCSV, cols)
	if err != nil {
		return err
	}
	rows := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return csvError(name, err, rec, len(header))
		}
		for j, cell := range rec {
			p.prof.ObserveText(idx[j], cell)
		}
		rows++
	}
	p.prof.AddRows(rows)
	p.rows += rows
	return nil
}

// csvError names the file and line of a CSV problem.
func csvError(name string, err error, rec []string, want int) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", name, err)
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return fmt.Errorf("%s:%d: %d fields, the header has %d: %w", name, pe.StartLine, len(rec), want, pe.Err)
	}
	return fmt.Errorf("%s:%d:%d: %w", name, pe.Line, pe.Column, pe.Err)
}

// looksLikeData reports whether every cell of a header is a number: a CSV
// without a header, whose first row would otherwise name the columns.
func looksLikeData(header []string) bool {
	for _, h := range header {
		if _, err := strconv.ParseFloat(strings.TrimSpace(h), 64); err != nil {
			return false
		}
	}
	return true
}

// parquet profiles the monitored columns of a Parquet file (the features
// and scores, sinks.MonitoredColumns), leaving out the rows the in-stream
// monitor leaves out (sinks.MonitorSkip). Only those columns and the two
// flags are decoded.
func (p *profiler) parquet(ctx context.Context, name string, f parquet.ReaderAtSeeker) error {
	// arrow-go panics on some corrupt files (guard); no caller callback
	// runs here, so the whole read is guarded.
	return guard(name, func() error {
		pf, err := file.NewParquetReader(f)
		if err != nil {
			return fmt.Errorf("%s: not a readable Parquet file: %w", name, err)
		}
		defer pf.Close()
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sc, err := fr.Schema()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		mon := sinks.MonitoredColumns(sc)
		if len(mon) == 0 {
			return fmt.Errorf("%s: no feature or score column to profile (schema: %s)", name, sc)
		}
		want := map[int]bool{}
		for _, i := range mon {
			want[i] = true
		}
		for i, fld := range sc.Fields() {
			if fld.Name == sinks.ColUpdate || fld.Name == sinks.ColPartial {
				want[i] = true
			}
		}
		var leaves []int
		for i := range sc.NumFields() {
			if sf := fr.Manifest.Fields[i]; want[i] && sf.IsLeaf() {
				leaves = append(leaves, sf.ColIndex)
			}
		}
		rr, err := fr.GetRecordReader(ctx, leaves, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer rr.Release()

		// The reader's schema holds only the columns asked for.
		read := rr.Schema()
		monRead := sinks.MonitoredColumns(read)
		cols := make([]monitor.Column, len(monRead))
		for k, i := range monRead {
			fld := read.Field(i)
			cols[k] = monitor.Column{Name: fld.Name, Kind: monitor.KindOf(fld.Type)}
		}
		idx, err := p.columns(name, formatParquet, cols)
		if err != nil {
			return err
		}
		for rr.Next() {
			rec := rr.RecordBatch()
			skip, kept := sinks.MonitorSkip(rec)
			for k, i := range monRead {
				p.prof.ObserveArrow(idx[k], rec.Column(i), skip)
			}
			p.prof.AddRows(kept)
			p.rows += kept
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}
