package windowing

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// Late policies. The zero value is LateDeadLetter: no event is dropped
// unless a window says so.
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
	// Field is the event field aggregated: required, except by count
	// (which then counts events, not values), rate (events per second) and
	// seconds_since_last (which takes none). Every aggregate but count,
	// count_if, distinct_count and missing_ratio needs a numeric field:
	// float64, int64, bool (true 1, false 0) or timestamp (seconds since
	// the epoch).
	Field string
	// Equals is the value compared with Field for count_if, written as in the
	// config (a string, a number, true or false, an RFC 3339 time); count_if
	// requires it and no other aggregate takes it.
	Equals string
	// Quantile is the quantile aggregate's q, in (0, 1]: 1 is the largest
	// value; 0 reads as unset and is refused (min gives the smallest).
	// No other aggregate takes it.
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

// SpecError is one problem of a Schema or a WindowSpec, as Validate
// reports it. It carries the offending setting twice: by name for people
// reading a Go error, and by position for the config package, which maps
// Key back to the line of the YAML file that set it.
type SpecError struct {
	// Path names the item by the names in the spec, e.g.
	// "windows[machine_5m].features[temp_p95].quantile".
	Path string
	// Key is the setting's place within the validated spec, by position
	// and with the config file's key names: "size",
	// "features[2].quantile", "fields[0].type". Prefixed with the spec's
	// own place in the file ("windows[0].", "schemas.sensor.") it is the
	// YAML key path.
	Key string
	// Reason says what is wrong, and is the same whichever way the spec
	// was built (config file or Go).
	Reason string
}

func (e *SpecError) Error() string { return e.Path + ": " + e.Reason }

// specErrs collects a spec's problems; path is the spec's own name-path
// (windows[w], schemas[s]).
type specErrs struct {
	path string
	errs []error
}

// add records a problem of the setting at key; named is the same setting
// by name (features[temp_p95].quantile), or "" when it reads as key does.
func (s *specErrs) add(key, named, format string, a ...any) {
	if named == "" {
		named = key
	}
	s.errs = append(s.errs, &SpecError{Path: s.path + "." + named, Key: key, Reason: fmt.Sprintf(format, a...)})
}

// Validate checks the schema and returns every problem found, each a
// *SpecError naming the field, joined with errors.Join.
func (s *Schema) Validate() error {
	e := specErrs{path: "schemas[" + s.Name + "]"}
	if s.Entity == "" {
		e.add("entity", "", "missing: the entity key field (e.g. machine_id)")
	}
	if s.Time == "" {
		e.add("time", "", "missing: the event-time field (e.g. ts)")
	}
	switch s.TimeFormat {
	case TimeRFC3339, TimeEpochS, TimeEpochMS:
	default:
		e.add("time_format", "", "%q is not one of rfc3339, epoch_s, epoch_ms", s.TimeFormat)
	}
	seen := map[string]bool{s.Entity: true, s.Time: true}
	if s.Entity != "" && s.Entity == s.Time {
		e.add("time", "", "same field as entity %q", s.Entity)
	}
	for i, f := range s.Fields {
		key := fmt.Sprintf("fields[%d]", i)
		if f.Name == "" {
			e.add(key+".name", "", "missing")
			continue
		}
		named := "fields[" + f.Name + "]"
		if seen[f.Name] {
			e.add(key+".name", named, "field %q is declared twice (or is the entity or time field)", f.Name)
		}
		seen[f.Name] = true
		if f.Name == ColOffset {
			e.add(key+".name", named, "name %q is reserved", ColOffset)
		}
		switch f.Type {
		case TypeString, TypeFloat64, TypeInt64, TypeBool, TypeTimestamp:
		default:
			e.add(key+".type", named+".type", "%q is not one of string, float64, int64, bool, timestamp", f.Type)
		}
	}
	return errors.Join(e.errs...)
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

// Aggregates lists every aggregate a feature may use.
func Aggregates() []Agg {
	return []Agg{AggCount, AggSum, AggMean, AggMin, AggMax, AggStddev, AggVariance, AggFirst, AggLast,
		AggDelta, AggRate, AggCountIf, AggDistinctCount, AggQuantile, AggMissingRatio, AggSecondsSinceLast}
}

// Validate checks the window against the schema of its stream and returns
// every problem found, each a *SpecError naming the window, feature and
// setting, joined with errors.Join. These are the only rules a window is
// held to: the config package reports the same errors at the lines of the
// file that set them.
func (w *WindowSpec) Validate(schema *Schema) error {
	e := specErrs{path: "windows[" + w.Name + "]"}
	if w.Name == "" {
		e.add("name", "", "missing")
	}
	w.validateKind(&e)
	// Bounded durations keep every sum of an event time (within ±2^62 ns)
	// and window durations within int64.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"size", w.Size}, {"slide", w.Slide}, {"gap", w.Gap}, {"out_of_orderness", w.OutOfOrderness},
		{"idle_timeout", w.IdleTimeout}, {"allowed_lateness", w.AllowedLateness}} {
		if d.v > maxWindowDuration {
			e.add(d.name, "", "%v is longer than %v", d.v, time.Duration(maxWindowDuration))
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
			e.add("allowed_lateness", "", "size + out_of_orderness + allowed_lateness span %d slides of %v, at most %d", n, slide, maxLiveSlides)
		}
	}
	if w.OutOfOrderness < 0 {
		e.add("out_of_orderness", "", "must not be negative")
	}
	if w.IdleTimeout < 0 {
		e.add("idle_timeout", "", "must not be negative")
	}
	if w.AllowedLateness < 0 {
		e.add("allowed_lateness", "", "must not be negative")
	}
	switch w.Late {
	case "", LateDeadLetter, LateIgnore:
	default:
		e.add("late", "", "%q is not one of dead_letter, ignore", w.Late)
	}
	if w.MaxKeys < 0 {
		e.add("max_keys", "", "must not be negative")
	}
	if w.MaxStateBytes < 0 {
		e.add("max_state_bytes", "", "must not be negative")
	}
	if len(w.Features) == 0 {
		e.add("features", "", "missing: list at least one feature")
	}
	if schema == nil {
		e.add("stream", "", "no schema")
		return errors.Join(e.errs...)
	}
	names := map[string]bool{
		schema.Entity: true, ColWindowStart: true, ColWindowEnd: true,
		ColUpdate: true, ColPartial: true, ColOffsetFirst: true, ColOffsetLast: true,
	}
	for i, f := range w.Features {
		key, named := fmt.Sprintf("features[%d]", i), fmt.Sprintf("features[%d]", i)
		if f.Name == "" {
			e.add(key+".name", "", "missing")
		} else {
			named = "features[" + f.Name + "]"
			if names[f.Name] {
				e.add(key+".name", named+".name", "%q is used twice or is a reserved column name", f.Name)
			}
			names[f.Name] = true
		}
		f.validate(&e, key, named, schema)
	}
	return errors.Join(e.errs...)
}

// validateKind checks the settings that shape the windows: size, slide
// and gap for the kind.
func (w *WindowSpec) validateKind(e *specErrs) {
	positive := func(key string, v time.Duration) {
		if v == 0 {
			e.add(key, "", "missing: a %s window needs a %s", w.Kind, key)
		} else if v < 0 {
			e.add(key, "", "must be positive, got %v", v)
		}
	}
	switch w.Kind {
	case Tumbling:
		positive("size", w.Size)
		if w.Slide != 0 && w.Slide != w.Size {
			e.add("slide", "", "only hopping windows slide (got %v for a tumbling window)", w.Slide)
		}
	case Hopping:
		positive("size", w.Size)
		positive("slide", w.Slide)
		if w.Size > 0 && w.Slide > 0 {
			if w.Size%w.Slide != 0 {
				e.add("size", "", "%v is not a multiple of slide %v", w.Size, w.Slide)
			} else if w.Size/w.Slide > maxPanesPerWindow {
				e.add("slide", "", "size/slide = %d panes per window, at most %d", w.Size/w.Slide, maxPanesPerWindow)
			}
		}
	case Session:
		positive("gap", w.Gap)
	default:
		e.add("kind", "", "%q is not one of tumbling, hopping, session", w.Kind)
	}
}

// validate checks one feature; key and named are its place by position
// and by name.
func (f *FeatureSpec) validate(e *specErrs, key, named string, schema *Schema) {
	bad := func(setting, format string, a ...any) {
		e.add(key+"."+setting, named+"."+setting, format, a...)
	}
	var typ FieldType
	if f.Field != "" {
		t, ok := schema.field(f.Field)
		if !ok {
			bad("field", "undefined field %q: schema %q does not declare it", f.Field, schema.Name)
			return
		}
		typ = t
	}
	// Every type but string folds as a number: a bool as 1 or 0 (the mean
	// is the share of true), a timestamp as seconds since the epoch.
	numeric := typ == TypeFloat64 || typ == TypeInt64 || typ == TypeBool || typ == TypeTimestamp
	switch f.Agg {
	case AggCount, AggRate, AggSecondsSinceLast:
		if f.Agg == AggRate && f.Field != "" && !numeric {
			bad("field", "rate needs a numeric field, %q is %s", f.Field, typ)
		}
		if f.Agg == AggSecondsSinceLast && f.Field != "" {
			bad("field", "seconds_since_last takes no field")
		}
	case AggSum, AggMean, AggMin, AggMax, AggStddev, AggVariance, AggFirst, AggLast, AggDelta, AggQuantile:
		if f.Field == "" {
			bad("field", "missing: %s needs a field", f.Agg)
		} else if !numeric {
			bad("field", "%s needs a numeric field, %q is %s", f.Agg, f.Field, typ)
		}
	case AggCountIf:
		switch {
		case f.Field == "":
			bad("field", "missing: count_if needs a field")
		case f.Equals == "":
			bad("equals", "missing: count_if needs the value to count")
		default:
			if _, err := parseEquals(typ, f.Equals); err != nil {
				bad("equals", "%v", err)
			}
		}
	case AggDistinctCount, AggMissingRatio:
		if f.Field == "" {
			bad("field", "missing: %s needs a field", f.Agg)
		}
	default:
		known := make([]string, 0, len(Aggregates()))
		for _, a := range Aggregates() {
			known = append(known, string(a))
		}
		bad("agg", "unknown aggregate %q (known: %s)", f.Agg, strings.Join(known, ", "))
		return
	}
	// The nearest-rank quantile is defined for q in (0, 1]: 1 is the
	// largest value. 0 (the smallest) is refused because it is also what
	// an omitted quantile reads as; min gives the smallest value.
	if f.Agg == AggQuantile {
		if f.Quantile == 0 {
			bad("quantile", "missing: quantile needs a quantile in (0, 1], e.g. 0.95 (for the smallest value use min)")
		} else if !(f.Quantile > 0 && f.Quantile <= 1) {
			bad("quantile", "must be within (0, 1], got %v", f.Quantile)
		}
	} else if f.Quantile != 0 {
		bad("quantile", "only the quantile aggregate takes a quantile (this feature is %s)", f.Agg)
	}
	if f.Agg != AggCountIf && f.Equals != "" {
		bad("equals", "only count_if takes equals (this feature is %s)", f.Agg)
	}
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
