package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/pipeline"
)

// A day-long window with an hour of lateness needs 26 h of records (with
// the margin); the local stream keeps 24 h, as a new Kinesis stream does:
// the pipeline refuses to start and says what to change.
func TestRetentionShorterThanTheWindowsRefusesToStart(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	c := tp.env.Clients
	clients := pipeline.Clients{Kinesis: c.Kinesis, DynamoDB: c.DynamoDB, S3: c.S3, SNS: c.SNS, SQS: c.SQS, CloudWatch: c.CloudWatch}

	day := tp.cfg.Windows[0]
	day.Size, day.AllowedLateness, day.IdleTimeout = config.Duration(24*time.Hour), config.Duration(time.Hour), config.Duration(24*time.Hour)
	day.OutOfOrderness = 0
	tp.cfg.Windows[0] = day
	_, err := pipeline.New(context.Background(), tp.cfg, clients, pipeline.Options{SpoolDir: t.TempDir()})
	if err == nil {
		t.Fatal("a 24h window with 1h lateness started on a stream that keeps 24h")
	}
	for _, want := range []string{"window w1s", tp.stream, "26h0m0s", "keeps them 24h", "--retention-period-hours 26"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	// 22 h + 1 h + the hour's margin fits in 24 h exactly.
	day.Size, day.IdleTimeout = config.Duration(22*time.Hour), config.Duration(22*time.Hour)
	tp.cfg.Windows[0] = day
	p, err := pipeline.New(context.Background(), tp.cfg, clients, pipeline.Options{SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatalf("a window that fits the retention: %v", err)
	}
	_ = p.Close(context.Background())
}
