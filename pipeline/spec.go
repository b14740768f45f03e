package pipeline

import (
	"fmt"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/windowing"
)

// SchemaFor returns the windowing schema of the named config schema.
func SchemaFor(cfg *config.Config, name string) (windowing.Schema, error) {
	s, ok := cfg.Schemas[name]
	if !ok || s == nil {
		return windowing.Schema{}, fmt.Errorf("pipeline: %s: undefined schema %q", cfg.File, name)
	}
	out := windowing.Schema{
		Name:       name,
		Entity:     s.Entity,
		Time:       s.Time,
		TimeFormat: windowing.TimeFormat(s.TimeFormat),
	}
	for _, f := range s.Fields {
		out.Fields = append(out.Fields, windowing.FieldSpec{Name: f.Name, Type: windowing.FieldType(f.Type)})
	}
	return out, nil
}

// StreamSchema returns the windowing schema of the named stream.
func StreamSchema(cfg *config.Config, stream string) (windowing.Schema, error) {
	for _, s := range cfg.Streams {
		if s.Name == stream {
			return SchemaFor(cfg, s.Schema)
		}
	}
	return windowing.Schema{}, fmt.Errorf("pipeline: %s: undefined stream %q", cfg.File, stream)
}

// WindowSpecFor maps a config window onto the windowing package's spec.
func WindowSpecFor(w config.Window) windowing.WindowSpec {
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
	for _, f := range w.Features {
		out.Features = append(out.Features, windowing.FeatureSpec{
			Name: f.Name, Agg: windowing.Agg(f.Agg), Field: f.Field, Equals: f.Equals, Quantile: f.Quantile,
		})
	}
	return out
}

// Window returns the named window of the config.
func Window(cfg *config.Config, name string) (config.Window, error) {
	for _, w := range cfg.Windows {
		if w.Name == name {
			return w, nil
		}
	}
	return config.Window{}, fmt.Errorf("pipeline: %s: undefined window %q", cfg.File, name)
}

// StreamBounds is the event-time sanity check of a stream's records, with
// the default future skew applied.
func StreamBounds(s config.Stream) windowing.TimeBounds {
	b := windowing.TimeBounds{MaxFutureSkew: s.MaxFutureSkew.D(), MaxPastAge: s.MaxPastAge.D()}
	if b.MaxFutureSkew == 0 {
		b.MaxFutureSkew = windowing.DefaultMaxFutureSkew
	}
	return b
}
