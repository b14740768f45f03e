package windowing

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// FieldType is the type of an event field as declared in the pipeline config.
type FieldType string

// Field types accepted in an event schema.
const (
	TypeString    FieldType = "string"
	TypeFloat64   FieldType = "float64"
	TypeInt64     FieldType = "int64"
	TypeBool      FieldType = "bool"
	TypeTimestamp FieldType = "timestamp"
)

// TimeFormat says how event-time values are written in the JSON records.
type TimeFormat string

// Time formats accepted for the event-time field (and for timestamp fields).
const (
	TimeRFC3339 TimeFormat = "rfc3339"
	TimeEpochS  TimeFormat = "epoch_s"
	TimeEpochMS TimeFormat = "epoch_ms"
)

// FieldSpec declares one event field.
type FieldSpec struct {
	Name string
	Type FieldType
}

// Schema describes the JSON events of one stream. Nothing about the events is
// hard-coded: the decoder and the windows work from this description alone.
type Schema struct {
	// Name identifies the schema in error messages (the key under "schemas").
	Name string
	// Entity is the field that keys the windows (machine_id, user_id).
	Entity string
	// Time is the event-time field.
	Time string
	// TimeFormat is how Time (and every timestamp field) is written.
	TimeFormat TimeFormat
	// Fields are the value fields. Fields not listed are ignored when decoding.
	Fields []FieldSpec
}

// Kind is the kind of window.
type Kind string

// Window kinds.
const (
	Tumbling Kind = "tumbling"
	Hopping  Kind = "hopping"
	Session  Kind = "session"
)

// LatePolicy says what the caller does with events too late to be counted.
// Windowing itself always hands them back and counts them; the policy is
// carried here only so that the config has one place to say it.
type LatePolicy string

// Late policies.
const (
	LateDeadLetter LatePolicy = "dead_letter"
	LateIgnore     LatePolicy = "ignore"
)

// Agg names an aggregate function.
type Agg string

// Aggregates. All results are float64 columns; an aggregate with no defined
// value (mean of no values, stddev of one value) is null.
const (
	AggCount            Agg = "count"              // events (or non-null values of Field if set)
	AggSum              Agg = "sum"                // sum of non-null values
	AggMean             Agg = "mean"               // arithmetic mean of non-null values
	AggMin              Agg = "min"                // smallest non-null value
	AggMax              Agg = "max"                // largest non-null value
	AggStddev           Agg = "stddev"             // sample standard deviation (n-1), Welford
	AggVariance         Agg = "variance"           // sample variance (n-1), Welford
	AggFirst            Agg = "first"              // value at the earliest event time
	AggLast             Agg = "last"               // value at the latest event time
	AggDelta            Agg = "delta"              // last - first
	AggRate             Agg = "rate"               // per second: events/size without Field, (last-first)/(t_last-t_first) with Field
	AggCountIf          Agg = "count_if"           // events whose Field equals Equals
	AggDistinctCount    Agg = "distinct_count"     // HyperLogLog estimate of distinct non-null values
	AggQuantile         Agg = "quantile"           // nearest-rank Quantile of non-null values (exact below 256, see qsRankBound)
	AggMissingRatio     Agg = "missing_ratio"      // events where Field is missing or null, over all events
	AggSecondsSinceLast Agg = "seconds_since_last" // first event of this window minus the key's last event before window_start
)

// FeatureSpec declares one output feature (one column of the feature batch).
type FeatureSpec struct {
	// Name is the output column name and so the model's feature name.
	Name string
	Agg  Agg
	// Field is the event field aggregated. Optional for count, rate and
	// seconds_since_last; required for the others.
	Field string
	// Equals is the value compared with Field for count_if, written as in the
	// config (a string, a number, true or false).
	Equals string
	// Quantile in [0, 1] for the quantile aggregate.
	Quantile float64
}

// WindowSpec declares one windowed feature set over one stream.
type WindowSpec struct {
	Name   string
	Stream string
	Kind   Kind
	// Size of tumbling and hopping windows.
	Size time.Duration
	// Slide of hopping windows; Size must be a multiple of it.
	Slide time.Duration
	// Gap closes a session after this much event time without events.
	Gap time.Duration
	// OutOfOrderness is subtracted from the largest event time seen to give
	// the watermark.
	OutOfOrderness time.Duration
	// IdleTimeout: when no record arrived for this long (processing time),
	// the watermark advances with processing time, so an idle shard still
	// closes its windows. Zero disables it.
	IdleTimeout time.Duration
	// AllowedLateness keeps windows updatable after they were emitted.
	AllowedLateness time.Duration
	// Late is what the caller does with events beyond AllowedLateness.
	Late LatePolicy
	// MaxKeys bounds the number of entities held in memory.
	MaxKeys int
	// MaxStateBytes bounds the live state of this window on one shard
	// (keys, panes and sketches, counted as Stats.LiveStateBytes); zero
	// means DefaultMaxStateBytes. When an event takes the state past it,
	// the least recently updated keys are evicted (Stats.EvictedForBytes),
	// as for MaxKeys.
	MaxStateBytes int64
	// PartialColumn adds the ColPartial column to the feature batches,
	// which flags the rows of evicted keys and of windows that closed
	// before their key's state began. Not a config setting: the pipeline
	// sets it once its readers apply the rule documented at PartialEvicted.
	PartialColumn bool
	Features      []FeatureSpec
}

// Reserved output column names; features may not use them.
const (
	ColWindowStart = "window_start"
	ColWindowEnd   = "window_end"
	ColUpdate      = "update"
	ColOffsetFirst = "offset_first"
	ColOffsetLast  = "offset_last"
	// ColOffset is the source-position column the Decoder adds to every
	// batch it builds.
	ColOffset = "_offset"
)

// SpecError is a configuration error. Path names the offending item the way
// the config file does (e.g. "windows[machine_5m].features[temp_p95].quantile").
type SpecError struct {
	Path   string
	Reason string
}

func (e *SpecError) Error() string { return e.Path + ": " + e.Reason }

// Validate checks the schema and returns every problem found, each a
// *SpecError naming the field, joined with errors.Join.
func (s *Schema) Validate() error {
	var errs []error
	p := "schemas[" + s.Name + "]"
	bad := func(path, format string, a ...any) {
		errs = append(errs, &SpecError{Path: path, Reason: fmt.Sprintf(format, a...)})
	}
	if s.Entity == "" {
		bad(p+".entity", "required")
	}
	if s.Time == "" {
		bad(p+".time", "required")
	}
	switch s.TimeFormat {
	case TimeRFC3339, TimeEpochS, TimeEpochMS:
	default:
		bad(p+".time_format", "%q is not one of rfc3339, epoch_s, epoch_ms", s.TimeFormat)
	}
	seen := map[string]bool{s.Entity: true, s.Time: true}
	if s.Entity != "" && s.Entity == s.Time {
		bad(p+".time", "same field as entity %q", s.Entity)
	}
	for i, f := range s.Fields {
		fp := fmt.Sprintf("%s.fields[%d]", p, i)
		if f.Name == "" {
			bad(fp+".name", "required")
			continue
		}
		fp = p + ".fields[" + f.Name + "]"
		if seen[f.Name] {
			bad(fp, "field %q declared twice (or is the entity or time field)", f.Name)
		}
		seen[f.Name] = true
		if f.Name == ColOffset {
			bad(fp, "name %q is reserved", ColOffset)
		}
		switch f.Type {
		case TypeString, TypeFloat64, TypeInt64, TypeBool, TypeTimestamp:
		default:
			bad(fp+".type", "%q is not one of string, float64, int64, bool, timestamp", f.Type)
		}
	}
	return errors.Join(errs...)
}

// field returns the declared type of name; the entity is a string and the
// event time a timestamp.
func (s *Schema) field(name string) (FieldType, bool) {
	switch name {
	case s.Entity:
		return TypeString, true
	case s.Time:
		return TypeTimestamp, true
	}
	for _, f := range s.Fields {
		if f.Name == name {
			return f.Type, true
		}
	}
	return "", false
}

// Validate checks the window against the schema of its stream and returns
// every problem found, each a *SpecError naming the window, feature and
// setting, joined with errors.Join.
func (w *WindowSpec) Validate(schema *Schema) error {
	var errs []error
	p := "windows[" + w.Name + "]"
	bad := func(path, format string, a ...any) {
		errs = append(errs, &SpecError{Path: path, Reason: fmt.Sprintf(format, a...)})
	}
	if w.Name == "" {
		bad(p+".name", "required")
	}
	switch w.Kind {
	case Tumbling:
		if w.Size <= 0 {
			bad(p+".size", "must be positive, got %v", w.Size)
		}
		if w.Slide != 0 && w.Slide != w.Size {
			bad(p+".slide", "only hopping windows slide (got %v for a tumbling window)", w.Slide)
		}
	case Hopping:
		if w.Size <= 0 {
			bad(p+".size", "must be positive, got %v", w.Size)
		}
		if w.Slide <= 0 {
			bad(p+".slide", "must be positive, got %v", w.Slide)
		} else if w.Size > 0 && w.Size%w.Slide != 0 {
			bad(p+".size", "%v is not a multiple of slide %v", w.Size, w.Slide)
		} else if w.Size > 0 && w.Size/w.Slide > maxPanesPerWindow {
			bad(p+".slide", "size/slide = %d panes per window, at most %d", w.Size/w.Slide, maxPanesPerWindow)
		}
	case Session:
		if w.Gap <= 0 {
			bad(p+".gap", "must be positive, got %v", w.Gap)
		}
	default:
		bad(p+".kind", "%q is not one of tumbling, hopping, session", w.Kind)
	}
	// Bounded durations keep every sum of an event time (within ±2^62 ns)
	// and window durations within int64.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"size", w.Size}, {"slide", w.Slide}, {"gap", w.Gap}, {"out_of_orderness", w.OutOfOrderness},
		{"idle_timeout", w.IdleTimeout}, {"allowed_lateness", w.AllowedLateness}} {
		if d.v > maxWindowDuration {
			bad(p+"."+d.name, "%v is longer than %v", d.v, time.Duration(maxWindowDuration))
		}
	}
	if (w.Kind == Tumbling || w.Kind == Hopping) && w.Size > 0 && w.Size <= maxWindowDuration &&
		w.OutOfOrderness >= 0 && w.OutOfOrderness <= maxWindowDuration &&
		w.AllowedLateness >= 0 && w.AllowedLateness <= maxWindowDuration {
		slide := w.Slide
		if w.Kind == Tumbling || slide <= 0 {
			slide = w.Size
		}
		// Panes live for size + out-of-orderness + allowed lateness; the
		// operator keeps a ring of that many slides.
		if n := (w.Size + w.OutOfOrderness + w.AllowedLateness) / slide; n > maxLiveSlides {
			bad(p+".allowed_lateness", "size + out_of_orderness + allowed_lateness span %d slides of %v, at most %d", n, slide, maxLiveSlides)
		}
	}
	if w.OutOfOrderness < 0 {
		bad(p+".out_of_orderness", "must not be negative")
	}
	if w.IdleTimeout < 0 {
		bad(p+".idle_timeout", "must not be negative")
	}
	if w.AllowedLateness < 0 {
		bad(p+".allowed_lateness", "must not be negative")
	}
	switch w.Late {
	case "", LateDeadLetter, LateIgnore:
	default:
		bad(p+".late", "%q is not one of dead_letter, ignore", w.Late)
	}
	if w.MaxKeys < 0 {
		bad(p+".max_keys", "must not be negative")
	}
	if w.MaxStateBytes < 0 {
		bad(p+".max_state_bytes", "must not be negative")
	}
	if len(w.Features) == 0 {
		bad(p+".features", "at least one feature is required")
	}
	if schema == nil {
		bad(p+".stream", "no schema")
		return errors.Join(errs...)
	}
	names := map[string]bool{
		schema.Entity: true, ColWindowStart: true, ColWindowEnd: true,
		ColUpdate: true, ColPartial: true, ColOffsetFirst: true, ColOffsetLast: true,
	}
	for i, f := range w.Features {
		fp := fmt.Sprintf("%s.features[%d]", p, i)
		if f.Name == "" {
			bad(fp+".name", "required")
		} else {
			fp = p + ".features[" + f.Name + "]"
			if names[f.Name] {
				bad(fp+".name", "%q is used twice or is a reserved column name", f.Name)
			}
			names[f.Name] = true
		}
		var typ FieldType
		if f.Field != "" {
			t, ok := schema.field(f.Field)
			if !ok {
				bad(fp+".field", "%q is not a field of schema %q", f.Field, schema.Name)
				continue
			}
			typ = t
		}
		numeric := typ == TypeFloat64 || typ == TypeInt64 || typ == TypeBool || typ == TypeTimestamp
		switch f.Agg {
		case AggCount, AggRate, AggSecondsSinceLast:
			if f.Agg == AggRate && f.Field != "" && !numeric {
				bad(fp+".field", "rate needs a numeric field, %q is %s", f.Field, typ)
			}
			if f.Agg == AggSecondsSinceLast && f.Field != "" {
				bad(fp+".field", "seconds_since_last takes no field")
			}
		case AggSum, AggMean, AggMin, AggMax, AggStddev, AggVariance, AggFirst, AggLast, AggDelta, AggQuantile:
			if f.Field == "" {
				bad(fp+".field", "%s needs a field", f.Agg)
			} else if !numeric {
				bad(fp+".field", "%s needs a numeric field, %q is %s", f.Agg, f.Field, typ)
			}
			if f.Agg == AggQuantile && (f.Quantile < 0 || f.Quantile > 1 || math.IsNaN(f.Quantile)) {
				bad(fp+".quantile", "must be within [0, 1], got %v", f.Quantile)
			}
		case AggCountIf:
			if f.Field == "" {
				bad(fp+".field", "count_if needs a field")
			} else if _, err := parseEquals(typ, f.Equals); err != nil {
				bad(fp+".equals", "%v", err)
			}
		case AggDistinctCount, AggMissingRatio:
			if f.Field == "" {
				bad(fp+".field", "%s needs a field", f.Agg)
			}
		default:
			bad(fp+".agg", "unknown aggregate %q", f.Agg)
		}
	}
	return errors.Join(errs...)
}

// equalsValue is a count_if operand parsed for the field's type.
type equalsValue struct {
	s string
	f float64
}

func parseEquals(t FieldType, s string) (equalsValue, error) {
	switch t {
	case TypeString:
		return equalsValue{s: s}, nil
	case TypeFloat64, TypeInt64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return equalsValue{}, fmt.Errorf("%q is not a number", s)
		}
		return equalsValue{f: f}, nil
	case TypeBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return equalsValue{}, fmt.Errorf("%q is not true or false", s)
		}
		if b {
			return equalsValue{f: 1}, nil
		}
		return equalsValue{f: 0}, nil
	case TypeTimestamp:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return equalsValue{}, fmt.Errorf("%q is not an RFC 3339 time", s)
		}
		return equalsValue{f: float64(t.UnixNano()) / 1e9}, nil
	}
	return equalsValue{}, fmt.Errorf("unsupported field type %q", t)
}

const maxPanesPerWindow = 1440

// maxWindowDuration bounds every duration of a window spec: 2^60 ns, about
// 36 years.
const maxWindowDuration = 1 << 60

// maxLiveSlides bounds the slides a tumbling or hopping window keeps panes
// for (size + out-of-orderness + allowed lateness): the operator's ring of
// pane slots is that long (40 bytes a slot, 5 MiB at most).
const maxLiveSlides = 1 << 17
