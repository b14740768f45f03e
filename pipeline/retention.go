package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/windowing"
)

// RetentionMargin is the headroom kept between what a window needs from
// its stream and the stream's retention: time for a failover, a slow
// restart or a backlog, during which the checkpoint stays behind the
// oldest open window.
const RetentionMargin = time.Hour

// RetentionNeeded is how long a stream must keep records for a window: the
// checkpoint stays at the oldest event of the oldest open window, which may
// be a window's span plus the watermark's delay plus the allowed lateness
// old, and a new owner replays from there. For a session window the span is
// one gap: a session that goes on longer than the stream's retention can
// only be rebuilt from what the stream still has.
func RetentionNeeded(w windowing.WindowSpec) time.Duration {
	span := w.Size
	if w.Kind == windowing.Session {
		span = w.Gap
	}
	return span + w.OutOfOrderness + w.AllowedLateness + RetentionMargin
}

// WindowRetention is RetentionNeeded for a configured window: what a
// stream must keep for it (devstack provisions it for local stacks).
func WindowRetention(w config.Window) time.Duration { return RetentionNeeded(WindowSpecFor(w)) }

// retentionAPI is what the retention check needs of Kinesis.
type retentionAPI interface {
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// checkRetention refuses a configuration whose windows need records older
// than their stream keeps: after a failover the new owner would replay
// from a checkpoint the stream no longer has, and lose events silently.
// A stream whose retention cannot be read (no permission) is logged and
// let through: the check protects, it must not stop a worker that could run.
func (p *Pipeline) checkRetention(ctx context.Context, k retentionAPI) error {
	for name, sp := range p.pl.streams {
		if len(sp.windows) == 0 {
			continue
		}
		out, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			p.log.Warn("stream retention not checked against the windows", "stream", name, "err", err)
			continue
		}
		hours := aws.ToInt32(out.StreamDescriptionSummary.RetentionPeriodHours)
		have := time.Duration(hours) * time.Hour
		for _, w := range sp.windows {
			if need := RetentionNeeded(w.spec); need > have {
				return fmt.Errorf("pipeline: %s: window %s needs stream %s to keep records %s (span %s + out_of_orderness %s + allowed_lateness %s + margin %s), but it keeps them %dh: "+
					"raise the retention (aws kinesis increase-stream-retention-period --stream-name %s --retention-period-hours %d) or shorten the window",
					p.cfg.File, w.cfg.Name, name, need, need-w.spec.OutOfOrderness-w.spec.AllowedLateness-RetentionMargin,
					w.spec.OutOfOrderness, w.spec.AllowedLateness, RetentionMargin, hours, name, int((need+time.Hour-1)/time.Hour))
			}
		}
	}
	return nil
}
