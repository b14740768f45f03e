package loadtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/windowing"
)

// Source is a traffic generator: Fleet or App.
type Source interface {
	Until(t time.Time, emit func(Event))
	Drain(emit func(Event))
}

// Labeler says whether a window of an entity ending at end precedes the
// outcome the model predicts (1) or not (0), and when the entity's outcome
// (failure, churn) happens, zero if never.
type Labeler func(entity string, end time.Time) (label int, outcome time.Time)

// FailureLabels labels a machine's window positive when the machine fails
// within horizon after the window's end.
func FailureLabels(truth []Failure, horizon time.Duration) Labeler {
	at := map[string]time.Time{}
	for _, f := range truth {
		at[f.Machine] = f.At
	}
	return horizonLabels(at, horizon)
}

// ChurnLabels labels a user's window positive when the user churns within
// horizon after the window's end.
func ChurnLabels(truth []Churn, horizon time.Duration) Labeler {
	at := map[string]time.Time{}
	for _, c := range truth {
		at[c.User] = c.At
	}
	return horizonLabels(at, horizon)
}

func horizonLabels(at map[string]time.Time, horizon time.Duration) Labeler {
	return func(entity string, end time.Time) (int, time.Time) {
		t, ok := at[entity]
		if ok && t.After(end) && t.Sub(end) <= horizon {
			return 1, t
		}
		return 0, t
	}
}

// DatasetStats counts what building a dataset saw.
type DatasetStats struct {
	Events, Rejected, Late, Rows, Positives int
}

// Dataset runs the generator's events, from start to end in steps of step,
// through the real decoder and window operator of the named window of cfg,
// and writes one CSV row per emitted window (updates excluded): the entity,
// window_end, every feature, the label and the outcome time. Training on these rows means
// the model sees exactly the features the pipeline computes.
func Dataset(cfg *config.Config, window string, src Source, start, end time.Time, step time.Duration, label Labeler, out io.Writer) (DatasetStats, error) {
	var st DatasetStats
	w, err := pipeline.Window(cfg, window)
	if err != nil {
		return st, err
	}
	schema, err := pipeline.StreamSchema(cfg, w.Stream)
	if err != nil {
		return st, err
	}
	spec := pipeline.WindowSpecFor(w)
	dec, err := windowing.NewDecoder(schema, nil)
	if err != nil {
		return st, err
	}
	defer dec.Release()
	op, err := windowing.NewOperator(spec, schema, windowing.Options{})
	if err != nil {
		return st, err
	}
	defer op.Release()

	cw := csv.NewWriter(out)
	header := []string{schema.Entity, windowing.ColWindowEnd}
	for _, f := range spec.Features {
		header = append(header, f.Name)
	}
	header = append(header, "label", "outcome_at")
	if err := cw.Write(header); err != nil {
		return st, err
	}
	row := make([]string, len(header))
	write := func(o windowing.Output) error {
		st.Late += len(o.Late)
		rec := o.Features
		if rec == nil {
			return nil
		}
		defer rec.Release()
		ent := rec.Column(0).(*array.String)
		ends := rec.Column(2).(*array.Timestamp)
		unit := ends.DataType().(*arrow.TimestampType).Unit
		upd := rec.Column(3 + len(spec.Features)).(*array.Boolean)
		for i := range int(rec.NumRows()) {
			if upd.Value(i) {
				continue
			}
			endT := ends.Value(i).ToTime(unit)
			row[0], row[1] = ent.Value(i), endT.Format(time.RFC3339Nano)
			for j := range spec.Features {
				col := rec.Column(3 + j).(*array.Float64)
				if col.IsNull(i) || math.IsNaN(col.Value(i)) {
					row[2+j] = ""
				} else {
					row[2+j] = strconv.FormatFloat(col.Value(i), 'g', -1, 64)
				}
			}
			l, at := label(ent.Value(i), endT)
			row[len(row)-2] = strconv.Itoa(l)
			row[len(row)-1] = ""
			if !at.IsZero() {
				row[len(row)-1] = at.Format(time.RFC3339Nano)
			}
			st.Rows++
			st.Positives += l
			if err := cw.Write(row); err != nil {
				return err
			}
		}
		return nil
	}
	var offset uint64
	var decodeErr error
	emit := func(e Event) {
		st.Events++
		offset++
		if err := dec.Append(e.Data, offset); err != nil {
			var de *windowing.DecodeError
			if !errors.As(err, &de) {
				decodeErr = err
			}
			st.Rejected++
		}
	}
	flush := func(now time.Time) error {
		if dec.Len() > 0 {
			rec := dec.NewRecordBatch()
			o, err := op.Process(rec, now)
			rec.Release()
			if err != nil {
				return err
			}
			if err := write(o); err != nil {
				return err
			}
		}
		return write(op.Advance(now))
	}
	for t := start.Add(step); ; t = t.Add(step) {
		if t.After(end) {
			t = end
		}
		src.Until(t, emit)
		if decodeErr != nil {
			return st, fmt.Errorf("loadtest: decoding generated events: %w", decodeErr)
		}
		if err := flush(t); err != nil {
			return st, err
		}
		if !t.Before(end) {
			break
		}
	}
	src.Drain(emit)
	if err := flush(end); err != nil {
		return st, err
	}
	if err := write(op.Drain()); err != nil {
		return st, err
	}
	cw.Flush()
	return st, cw.Error()
}
