package pipeline

import (
	"fmt"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/windowing"
)

// The conversion of the configuration onto windowing's types has one home,
// the config package (config/spec.go), which validates with it too: these
// names are the pipeline's handles on it, so that what `streamscore config
// validate` accepts is what the pipeline builds.

// SchemaFor returns the windowing schema of the named config schema
// (config.Config.SchemaSpec).
func SchemaFor(cfg *config.Config, name string) (windowing.Schema, error) {
	s, err := cfg.SchemaSpec(name)
	if err != nil {
		return s, fmt.Errorf("pipeline: %w", err)
	}
	return s, nil
}

// StreamSchema returns the windowing schema of the named stream
// (config.Config.StreamSchema).
func StreamSchema(cfg *config.Config, stream string) (windowing.Schema, error) {
	s, err := cfg.StreamSchema(stream)
	if err != nil {
		return s, fmt.Errorf("pipeline: %w", err)
	}
	return s, nil
}

// WindowSpecFor maps a config window onto the windowing package's spec
// (config.Window.Spec).
func WindowSpecFor(w config.Window) windowing.WindowSpec { return w.Spec() }

// Window returns the named window of the config (config.Config.Window).
func Window(cfg *config.Config, name string) (config.Window, error) {
	w, err := cfg.Window(name)
	if err != nil {
		return w, fmt.Errorf("pipeline: %w", err)
	}
	return w, nil
}

// StreamBounds is the event-time sanity check of a stream's records, with
// the default future skew applied (config.Stream.TimeBounds).
func StreamBounds(s config.Stream) windowing.TimeBounds { return s.TimeBounds() }
