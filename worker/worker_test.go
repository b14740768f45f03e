package worker

import (
	"context"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/pipeline"
)

// A worker refuses to start without configurations, and a configuration
// that cannot be built stops it before anything runs (the pipelines built
// before it are closed). The running worker is exercised end to end by the
// load test's workers (loadtest.TestDemoLosesNothingWhenAWorkerDies), which
// run "streamscore run".
func TestRunRefusesBeforeRunning(t *testing.T) {
	t.Parallel()
	if err := Run(context.Background(), nil, pipeline.Clients{}, Options{}); err == nil || !strings.Contains(err.Error(), "no pipeline configuration") {
		t.Fatalf("Run without configurations = %v", err)
	}
	cfg, err := config.Load("../examples/factory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// No clients: the CloudWatch sink the example asks for cannot be built.
	err = Run(context.Background(), []*config.Config{cfg}, pipeline.Clients{}, Options{Listen: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "needs a CloudWatch client") {
		t.Fatalf("Run with a configuration that cannot be built = %v, want the CloudWatch client error", err)
	}
}
