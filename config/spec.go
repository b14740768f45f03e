package config

// The one conversion of the configuration's schemas, windows and streams
// onto the windowing package's types. Validation (below) and the pipeline
// both build their specs here, so `streamscore config validate` judges
// exactly the windows the pipeline runs, by windowing's own rules.

import (
	"errors"
	"fmt"

	"github.com/streamscore/streamscore/windowing"
)

// Spec returns the windowing schema this schema declares, named name (its
// key under schemas). An omitted time_format is rfc3339.
func (s *Schema) Spec(name string) windowing.Schema {
	out := windowing.Schema{
		Name:       name,
		Entity:     s.Entity,
		Time:       s.Time,
		TimeFormat: windowing.TimeFormat(s.TimeFormat),
	}
	if out.TimeFormat == "" {
		out.TimeFormat = windowing.TimeRFC3339
	}
	for _, f := range s.Fields {
		out.Fields = append(out.Fields, windowing.FieldSpec{Name: f.Name, Type: windowing.FieldType(f.Type)})
	}
	return out
}

// SchemaSpec returns the windowing schema of the named schema.
func (c *Config) SchemaSpec(name string) (windowing.Schema, error) {
	s, ok := c.Schemas[name]
	if !ok || s == nil {
		return windowing.Schema{}, fmt.Errorf("config: %s: undefined schema %q", c.File, name)
	}
	return s.Spec(name), nil
}

// StreamSchema returns the windowing schema of the named stream's records.
func (c *Config) StreamSchema(stream string) (windowing.Schema, error) {
	for _, s := range c.Streams {
		if s.Name == stream {
			return c.SchemaSpec(s.Schema)
		}
	}
	return windowing.Schema{}, fmt.Errorf("config: %s: undefined stream %q", c.File, stream)
}

// Window returns the named window.
func (c *Config) Window(name string) (Window, error) {
	for _, w := range c.Windows {
		if w.Name == name {
			return w, nil
		}
	}
	return Window{}, fmt.Errorf("config: %s: undefined window %q", c.File, name)
}

// Spec returns the windowing spec of the window. The file's defaults that
// windowing does not share are applied here: an omitted idle_timeout is
// the window's size (or gap), where windowing's zero turns it off, and an
// omitted late is dead_letter. Every other zero (max_keys,
// max_state_bytes) is left for windowing's own default.
func (w Window) Spec() windowing.WindowSpec {
	out := windowing.WindowSpec{
		Name:            w.Name,
		Stream:          w.Stream,
		Kind:            windowing.Kind(w.Kind),
		Size:            w.Size.D(),
		Slide:           w.Slide.D(),
		Gap:             w.Gap.D(),
		OutOfOrderness:  w.OutOfOrderness.D(),
		IdleTimeout:     w.IdleTimeout.D(),
		AllowedLateness: w.AllowedLateness.D(),
		Late:            windowing.LatePolicy(w.Late),
		MaxKeys:         w.MaxKeys,
		MaxStateBytes:   w.MaxStateBytes,
	}
	if out.IdleTimeout == 0 {
		out.IdleTimeout = max(out.Size, out.Gap)
	}
	if out.Late == "" {
		out.Late = windowing.LateDeadLetter
	}
	for _, f := range w.Features {
		out.Features = append(out.Features, windowing.FeatureSpec{
			Name: f.Name, Agg: windowing.Agg(f.Agg), Field: f.Field, Equals: f.Equals, Quantile: f.Quantile,
		})
	}
	return out
}

// TimeBounds is the event-time sanity check of the stream's records: an
// omitted max_future_skew is windowing.DefaultMaxFutureSkew (windowing's
// zero is no bound).
func (s Stream) TimeBounds() windowing.TimeBounds {
	b := windowing.TimeBounds{MaxFutureSkew: s.MaxFutureSkew.D(), MaxPastAge: s.MaxPastAge.D()}
	if b.MaxFutureSkew == 0 {
		b.MaxFutureSkew = windowing.DefaultMaxFutureSkew
	}
	return b
}

// validateSpecs has windowing judge every schema and window, and reports
// its errors at the keys that set them.
func (c *Config) validateSpecs(p *problems) {
	for _, name := range sortedKeys(c.Schemas) {
		if s := c.Schemas[name]; s != nil {
			sp := s.Spec(name)
			p.spec("schemas."+name, sp.Validate(), false)
		}
	}
	for i, w := range c.Windows {
		var schema *windowing.Schema
		if s, err := c.StreamSchema(w.Stream); err == nil {
			schema = &s
		}
		spec := w.Spec()
		// Without a schema the stream or schema reference is already
		// reported; windowing's "no schema" would say it twice.
		p.spec(fmt.Sprintf("windows[%d]", i), spec.Validate(schema), schema == nil)
	}
}

// spec adds windowing's errors under prefix, the spec's key path in the
// file. skipStream drops the error about the window's missing schema.
func (p *problems) spec(prefix string, err error, skipStream bool) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var se *windowing.SpecError
		switch {
		case !errors.As(e, &se):
			p.add(prefix, "%v", e)
		case skipStream && se.Key == "stream":
		default:
			p.add(prefix+"."+se.Key, "%s", se.Reason)
		}
	}
}
