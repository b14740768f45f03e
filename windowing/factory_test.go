package windowing_test

import (
	"testing"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/windowing"
)

func init() { windowing.FactoryWindow = factoryWindow }

// factoryWindow loads the machine_5m window and the sensor schema of
// examples/factory.yaml through config's one conversion onto windowing's
// types, the one the pipeline runs.
func factoryWindow(tb testing.TB) (windowing.WindowSpec, windowing.Schema) {
	tb.Helper()
	c, err := config.Load("../examples/factory.yaml")
	if err != nil {
		tb.Fatalf("load factory example: %v", err)
	}
	s, err := c.SchemaSpec("sensor")
	if err != nil {
		tb.Fatal(err)
	}
	w, err := c.Window("machine_5m")
	if err != nil {
		tb.Fatal(err)
	}
	return w.Spec(), s
}
