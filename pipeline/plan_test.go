package pipeline

import (
	"context"
	"testing"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/sinks"
)

// nopSink is a test double of our own sinks.Sink interface (not of an AWS
// API): it accepts nothing and holds nothing.
type nopSink struct{ flushed int }

func (s *nopSink) Write(context.Context, sinks.Batch) error { return nil }
func (s *nopSink) Flush(context.Context) error              { return nil }
func (s *nopSink) FlushShard(context.Context, string, string) error {
	s.flushed++
	return nil
}
func (s *nopSink) Close(context.Context) error { return nil }
func (s *nopSink) Healthy() error              { return nil }

// Two scorers on one stream, each writing to a tee (the shape every
// scorer with S3 and CloudWatch has): the plan keeps both sinks for the
// shard's flush, and a flush reaches each.
func TestPlanKeepsEveryScorersSinkForTheFlush(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../examples/factory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := newPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wp := pl.windows[cfg.Windows[0].Name]
	shared := &nopSink{}
	a, b := &nopSink{}, &nopSink{}
	pl.addScorer(wp, &scorerPlan{name: "a", sink: sinks.Tee(a, shared)})
	pl.addScorer(wp, &scorerPlan{name: "b", sink: sinks.Tee(b, shared)})
	st := &shardState{stream: wp.stream, shard: "shardId-0", plan: pl.streams[wp.stream]}
	if err := st.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.flushed != 1 || b.flushed != 1 || shared.flushed != 2 {
		t.Fatalf("flushes: a %d, b %d, shared %d; want 1, 1, 2", a.flushed, b.flushed, shared.flushed)
	}
}

func TestCountByReason(t *testing.T) {
	t.Parallel()
	var poison []sinks.Poison
	for _, r := range []string{"late", "undecodable", "late", "entity", "late"} {
		poison = append(poison, sinks.Poison{Reason: r})
	}
	got := map[string]int{}
	calls := 0
	countByReason(poison, func(r string, n int) { got[r] += n; calls++ })
	if calls != 3 || got["late"] != 3 || got["undecodable"] != 1 || got["entity"] != 1 {
		t.Fatalf("counts %v in %d calls, want late 3, undecodable 1, entity 1 in 3", got, calls)
	}
}
