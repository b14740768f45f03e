package workerload

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestThroughputWindowsAndEMA(t *testing.T) {
	var tp Throughput
	if tp.Observed() {
		t.Fatal("observed before anything was recorded")
	}
	tp.Add(0) // an empty batch: Java records nothing for it
	if tp.Observed() {
		t.Fatal("an empty batch counted as observed")
	}
	tp.Add(4096)
	tp.Add(6144)
	if !tp.Observed() {
		t.Fatal("not observed after Add")
	}
	// 10 KB in the first window, which is the interval given: the average
	// starts there.
	t0 := time.Now()
	if v := tp.kbpsAt(t0, time.Second); v != 10 {
		t.Fatalf("window 1 = %v, want 10", v)
	}
	// Nothing in the next second: 0.5·0 + 0.5·10.
	if v := tp.kbpsAt(t0.Add(time.Second), time.Second); v != 5 {
		t.Fatalf("window 2 = %v, want 5", v)
	}
	// 40 KB over the 2 s since (a renewal that ran a second late) = 20
	// KBps, not 40: 0.5·20 + 0.5·5.
	tp.Add(40 * 1024)
	if v := tp.kbpsAt(t0.Add(3*time.Second), time.Second); v != 12.5 {
		t.Fatalf("window 3 = %v, want 12.5", v)
	}
	// No time since the last call leaves the average alone.
	if v := tp.kbpsAt(t0.Add(3*time.Second), time.Second); v != 12.5 {
		t.Fatalf("empty window = %v, want 12.5", v)
	}
}

func TestThroughputDefaultRenewWindowRounds(t *testing.T) {
	// Java's renewer runs every failover/3 − 25 ms = 3308 ms; 3308 KB in
	// that window is 1000 KBps, and 1 KB is 0.302297…, rounded to 6
	// decimals half-up.
	window := 3308 * time.Millisecond
	var tp Throughput
	tp.Add(3308 * 1024)
	if v := tp.KBps(window); v != 1000 {
		t.Fatalf("3308 KB in 3.308 s = %v, want 1000", v)
	}
	var small Throughput
	small.Add(1024)
	if v := small.KBps(window); v != 0.302297 {
		t.Fatalf("1 KB in 3.308 s = %v, want 0.302297", v)
	}
}

func TestThroughputSeed(t *testing.T) {
	var tp Throughput
	tp.Seed(100) // the lease's stored throughputKBps when it moved here
	if !tp.Observed() {
		t.Fatal("a seeded lease must report throughput")
	}
	t0 := time.Now()
	if v := tp.kbpsAt(t0, 0); v != 100 {
		t.Fatalf("seeded = %v, want 100", v)
	}
	tp.Add(10 * 1024)
	if v := tp.kbpsAt(t0.Add(time.Second), time.Second); v != 55 {
		t.Fatalf("after one window = %v, want 0.5·10 + 0.5·100 = 55", v)
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), -1} {
		tp.Seed(bad)
		if v := tp.kbpsAt(t0.Add(time.Second), time.Second); v != 55 {
			t.Fatalf("Seed(%v) changed the average to %v", bad, v)
		}
	}
}

// TestThroughputConcurrentAddLosesNothing adds from several goroutines
// while renewals close windows, then recovers each window's rate from the
// returned averages (x = 2·ema − previous ema with α 0.5): their sum must
// be every byte added, neither lost nor counted twice. Run with -race.
func TestThroughputConcurrentAddLosesNothing(t *testing.T) {
	const writers, batches, batch = 4, 2000, 1024
	var tp Throughput
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range batches {
				tp.Add(batch)
			}
		})
	}
	// At most 200 renewals race the writers, so that rounding (1e-6 per
	// value) stays far below one batch (1 KB).
	stop := make(chan struct{})
	windows := make(chan []float64)
	// Each renewal a second after the last, on a clock of the test's own.
	clock := time.Now()
	renew := func() float64 {
		clock = clock.Add(time.Second)
		return tp.kbpsAt(clock, time.Second)
	}
	go func() {
		var got []float64
		for len(got) < 200 {
			select {
			case <-stop:
				windows <- got
				return
			default:
				got = append(got, renew())
				_ = tp.Observed()
				runtime.Gosched()
			}
		}
		<-stop
		windows <- got
	}()
	wg.Wait()
	close(stop)
	got := append(<-windows, renew())
	var total, prev float64
	for i, ema := range got {
		x := ema
		if i > 0 {
			x = 2*ema - prev
		}
		total += x
		prev = ema
	}
	want := float64(writers * batches * batch / 1024)
	// Each returned value is rounded to 1e-6; recovering a rate costs at most 3e-6.
	if math.Abs(total-want) > 3e-6*float64(len(got)) {
		t.Fatalf("windows add up to %v KB, want %v (%d windows)", total, want, len(got))
	}
}

func TestThroughputAddAllocatesNothing(t *testing.T) {
	var tp Throughput
	if n := testing.AllocsPerRun(1000, func() { tp.Add(512) }); n != 0 {
		t.Fatalf("Add allocates %v times per call", n)
	}
}

func BenchmarkThroughputAdd(b *testing.B) {
	var tp Throughput
	b.ReportAllocs()
	for b.Loop() {
		tp.Add(512)
	}
}

func BenchmarkCgroupV2Sample(b *testing.B) {
	src, err := NewCgroupV2(tree(b, "cgroupv2-quota"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Sample(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
