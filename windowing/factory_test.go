package windowing_test

import (
	"testing"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/windowing"
)

func init() { windowing.FactoryWindow = factoryWindow }

// factoryWindow loads the machine_5m window and the sensor schema of
// examples/factory.yaml, mapped field by field as the pipeline maps them.
func factoryWindow(tb testing.TB) (windowing.WindowSpec, windowing.Schema) {
	tb.Helper()
	c, err := config.Load("../examples/factory.yaml")
	if err != nil {
		tb.Fatalf("load factory example: %v", err)
	}
	cs := c.Schemas["sensor"]
	s := windowing.Schema{Name: "sensor", Entity: cs.Entity, Time: cs.Time, TimeFormat: windowing.TimeFormat(cs.TimeFormat)}
	for _, f := range cs.Fields {
		s.Fields = append(s.Fields, windowing.FieldSpec{Name: f.Name, Type: windowing.FieldType(f.Type)})
	}
	for _, cw := range c.Windows {
		if cw.Name != "machine_5m" {
			continue
		}
		w := windowing.WindowSpec{
			Name: cw.Name, Stream: cw.Stream, Kind: windowing.Kind(cw.Kind), Size: cw.Size.D(), Slide: cw.Slide.D(),
			Gap: cw.Gap.D(), OutOfOrderness: cw.OutOfOrderness.D(), IdleTimeout: cw.IdleTimeout.D(),
			AllowedLateness: cw.AllowedLateness.D(), Late: windowing.LatePolicy(cw.Late), MaxKeys: cw.MaxKeys,
		}
		for _, f := range cw.Features {
			w.Features = append(w.Features, windowing.FeatureSpec{Name: f.Name, Agg: windowing.Agg(f.Agg), Field: f.Field, Equals: f.Equals, Quantile: f.Quantile})
		}
		return w, s
	}
	tb.Fatal("examples/factory.yaml has no window machine_5m")
	return windowing.WindowSpec{}, windowing.Schema{}
}
