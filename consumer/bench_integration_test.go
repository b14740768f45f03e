package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// BenchmarkLeasePickup16 measures how long one worker starting on a
// 16-shard stream takes to hold all 16 leases (from Run to the last take),
// with production lease timing (failover 10 s, renewal every 3.3 s).
// Against kinesis-local and dynalite; run with -benchtime=3x.
func BenchmarkLeasePickup16(b *testing.B) {
	env := devstacktest.New(b)
	stream := env.CreateStream(b, 16)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		cfg := Config{ApplicationName: env.Name("pickup"), WorkerID: "w", Streams: []StreamConfig{{Name: stream, InitialPosition: TrimHorizon}}}
		c, err := New(cfg, env.Kinesis, env.DynamoDB)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- c.Run(ctx, ProcessFunc(func(context.Context, *Batch) error { return nil })) }()
		for len(c.HeldLeases()) < 16 {
			if time.Since(start) > time.Minute {
				b.Fatal("16 leases not held within a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		total += took
		b.Logf("run %d: 16 leases held after %v", i, took)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-16-leases")
}

// BenchmarkFailover measures how long a surviving worker takes to hold
// every lease after the other worker of two dies without shutting down
// (its clients start failing, as when the process is killed), with
// production lease timing: failover 10 s, renewal every 3.3 s, 8 shards.
// Run with -benchtime=1x.
func BenchmarkFailover(b *testing.B) {
	env := devstacktest.New(b)
	stream := env.CreateStream(b, 8)
	var total time.Duration
	nop := ProcessFunc(func(context.Context, *Batch) error { return nil })
	for i := 0; i < b.N; i++ {
		table := env.Name("failover")
		cfg := func(w string) Config {
			return Config{ApplicationName: table, WorkerID: w, Streams: []StreamConfig{{Name: stream, InitialPosition: TrimHorizon}}}
		}
		ks, kin, ddb := newKillSwitch(env.Kinesis, env.DynamoDB)
		doomed, err := New(cfg("doomed"), kin, ddb)
		if err != nil {
			b.Fatal(err)
		}
		survivor, err := New(cfg("survivor"), env.Kinesis, env.DynamoDB)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = doomed.Run(ctx, nop) }()
		go func() { _ = survivor.Run(ctx, nop) }()
		deadline := time.Now().Add(2 * time.Minute)
		for len(doomed.HeldLeases()) != 4 || len(survivor.HeldLeases()) != 4 {
			if time.Now().After(deadline) {
				b.Fatalf("no 4/4 spread: %d/%d", len(doomed.HeldLeases()), len(survivor.HeldLeases()))
			}
			time.Sleep(10 * time.Millisecond)
		}
		ks.kill()
		start := time.Now()
		for len(survivor.HeldLeases()) < 8 {
			if time.Since(start) > time.Minute {
				b.Fatal("survivor did not take over within a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		total += took
		b.Logf("run %d: survivor held all 8 leases %v after the kill", i, took)
		cancel()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-take-over")
}
