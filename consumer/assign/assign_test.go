package assign

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 42)) }

func cpuWorker(id string, cpu float64) Worker {
	return Worker{ID: id, Metrics: map[string]Metric{CPUMetric: {Value: cpu, Max: 100}}}
}

// unassigned returns n unassigned leases of kbps each (no throughput when kbps < 0).
func unassigned(n int, kbps float64) []Lease {
	out := make([]Lease, n)
	for i := range out {
		out[i] = Lease{Key: fmt.Sprintf("l%04d", i), ThroughputKBps: max(kbps, 0), HasThroughput: kbps >= 0}
	}
	return out
}

// tally counts the leases and throughput per worker after the moves.
func tally(leases []Lease, moves []Move) (count map[string]int, kbps map[string]float64) {
	to := map[string]string{}
	for _, m := range moves {
		to[m.Key] = m.To
	}
	count, kbps = map[string]int{}, map[string]float64{}
	for _, l := range leases {
		o := l.actualOwner()
		if t, ok := to[l.Key]; ok {
			o = t
		}
		if o != "" {
			count[o]++
			kbps[o] += l.ThroughputKBps
		}
	}
	return count, kbps
}

func TestDecideRejectsInvalidInput(t *testing.T) {
	ok := []Lease{{Key: "a", HasThroughput: true, ThroughputKBps: 1}}
	w := []Worker{cpuWorker("w", 10)}
	for _, tc := range []struct {
		name    string
		cfg     Config
		leases  []Lease
		workers []Worker
		want    string
	}{
		{"empty lease key", Config{}, []Lease{{}}, w, "leases[0]: empty key"},
		{"repeated lease key", Config{}, []Lease{{Key: "a"}, {Key: "a"}}, w, `key "a" repeated`},
		{"NaN throughput", Config{}, []Lease{{Key: "a", HasThroughput: true, ThroughputKBps: math.NaN()}}, w, `lease "a": throughputKBps`},
		{"negative throughput", Config{}, []Lease{{Key: "a", HasThroughput: true, ThroughputKBps: -1}}, w, `lease "a": throughputKBps`},
		{"empty worker ID", Config{}, ok, []Worker{{}}, "workers[0]: empty ID"},
		{"repeated worker", Config{}, ok, []Worker{{ID: "w"}, {ID: "w"}}, `ID "w" repeated`},
		{"infinite CPU", Config{}, ok, []Worker{cpuWorker("w", math.Inf(1))}, `worker "w": metric "C": value`},
		{"zero max", Config{}, ok, []Worker{{ID: "w", Metrics: map[string]Metric{"C": {Value: 1}}}}, `metric "C": max`},
		{"unknown strategy", Config{Strategy: 7}, ok, w, "Config.Strategy"},
		{"threshold above 100", Config{ReBalanceThresholdPercent: 101}, ok, w, "ReBalanceThresholdPercent"},
		{"negative dampening", Config{DampeningPercent: -1}, ok, w, "DampeningPercent"},
		{"NaN max throughput", Config{MaxThroughputPerHostKBps: math.NaN()}, ok, w, "MaxThroughputPerHostKBps"},
		{"negative max leases", Config{MaxLeasesPerWorker: -1}, ok, w, "MaxLeasesPerWorker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moves, err := Decide(tc.cfg, tc.leases, tc.workers, true, newRNG(1))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if moves != nil {
				t.Fatalf("moves %v with an error", moves)
			}
		})
	}
	if _, err := Decide(Config{}, ok, w, true, nil); err == nil {
		t.Fatal("nil rng accepted")
	}
}

// TestExpiredAllAssignedInOneRound: one round assigns every expired or unassigned lease, including at a cold
// start where no lease has a throughput and every CPU is 0 (Java's NaN case), and spreads them evenly.
func TestExpiredAllAssignedInOneRound(t *testing.T) {
	workers := func(n int, metrics bool) []Worker {
		out := make([]Worker, n)
		for i := range out {
			out[i] = Worker{ID: fmt.Sprintf("w%d", i)}
			if metrics {
				out[i] = cpuWorker(out[i].ID, 0)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		leases  []Lease
		workers []Worker
	}{
		{"cpu, throughput known", Config{}, unassigned(1000, 5), workers(7, true)},
		{"cpu, cold start", Config{}, unassigned(1000, -1), workers(7, true)},
		{"throughput only, cold start", Config{}, unassigned(1000, -1), workers(7, false)},
		{"throughput only, throughput known", Config{}, unassigned(1000, 5), workers(7, false)},
		{"mixed, cold start", Config{}, unassigned(1000, -1), append(workers(3, true), Worker{ID: "x"}, Worker{ID: "y"})},
		{"count based", Config{Strategy: LeaseCountBased}, unassigned(1000, -1), workers(7, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, balance := range []bool{false, true} {
				moves, err := Decide(tc.cfg, tc.leases, tc.workers, balance, newRNG(3))
				if err != nil {
					t.Fatal(err)
				}
				if len(moves) != len(tc.leases) {
					t.Fatalf("%d moves for %d unassigned leases", len(moves), len(tc.leases))
				}
				for _, m := range moves {
					if !m.Expired || m.From != "" {
						t.Fatalf("move %+v: want Expired from \"\"", m)
					}
				}
				count, _ := tally(tc.leases, moves)
				lo, hi := len(tc.leases), 0
				for _, w := range tc.workers {
					lo, hi = min(lo, count[w.ID]), max(hi, count[w.ID])
				}
				if hi-lo > 1 {
					t.Fatalf("uneven spread %v", count)
				}
			}
		})
	}
}

// TestExpiredOfDeadWorker: the leases of a worker that stopped reporting go to the live ones, oldest expired
// first when there is not room for all.
func TestExpiredOfDeadWorker(t *testing.T) {
	var leases []Lease
	for i := range 6 {
		leases = append(leases, Lease{Key: fmt.Sprintf("live%d", i), Owner: []string{"a", "b"}[i%2], HasThroughput: true, ThroughputKBps: 1})
	}
	for i := range 4 {
		leases = append(leases, Lease{Key: fmt.Sprintf("dead%d", i), Owner: "gone", HasThroughput: true, ThroughputKBps: 1,
			Expired: true, LastCounterIncrement: int64(10 - i)})
	}
	for _, strategy := range []Strategy{WorkerUtilizationAware, LeaseCountBased} {
		t.Run(strategy.String(), func(t *testing.T) {
			cfg := Config{Strategy: strategy, MaxLeasesPerWorker: 4}
			moves, err := Decide(cfg, leases, []Worker{{ID: "a"}, {ID: "b"}}, false, newRNG(1))
			if err != nil {
				t.Fatal(err)
			}
			// Room for 2: dead3 and dead2 expired first (lowest LastCounterIncrement).
			if len(moves) != 2 || moves[0].Key != "dead3" || moves[1].Key != "dead2" {
				t.Fatalf("moves %v, want dead3 then dead2", moves)
			}
			for _, m := range moves {
				if m.From != "gone" || !m.Expired {
					t.Fatalf("move %+v", m)
				}
			}
			if count, _ := tally(leases, moves); count["a"] != 4 || count["b"] != 4 {
				t.Fatalf("counts %v, want 4 each", count)
			}
		})
	}
}

func TestMaxLeasesPerWorker(t *testing.T) {
	for _, strategy := range []Strategy{WorkerUtilizationAware, LeaseCountBased} {
		t.Run(strategy.String(), func(t *testing.T) {
			leases := unassigned(10, 3)
			leases[0].Owner, leases[0].Expired = "a", false // a already holds one
			cfg := Config{Strategy: strategy, MaxLeasesPerWorker: 3}
			for seed := range uint64(20) {
				moves, err := Decide(cfg, leases, []Worker{cpuWorker("a", 1), cpuWorker("b", 50), cpuWorker("c", 0)}, true, newRNG(seed))
				if err != nil {
					t.Fatal(err)
				}
				count, _ := tally(leases, moves)
				if count["a"] != 3 || count["b"] != 3 || count["c"] != 3 {
					t.Fatalf("seed %d: counts %v, want 3 each (cap 3, one lease left over)", seed, count)
				}
			}
		})
	}
}

// TestMaxThroughputPerHost: no worker is given a lease that takes it above the maximum, except a worker's
// first lease; a worker already above it gets nothing, and balancing respects it too.
func TestMaxThroughputPerHost(t *testing.T) {
	cfg := Config{MaxThroughputPerHostKBps: 25}
	workers := []Worker{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	t.Run("expired", func(t *testing.T) {
		leases := append([]Lease{{Key: "huge", HasThroughput: true, ThroughputKBps: 40}}, unassigned(12, 10)...)
		moves, err := Decide(cfg, leases, append(workers, Worker{ID: "d"}), true, newRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		count, kbps := tally(leases, moves)
		for _, w := range []string{"a", "b", "c", "d"} {
			if kbps[w] > 25 && count[w] > 1 {
				t.Fatalf("%s holds %v KBps in %d leases, above the 25 KBps maximum", w, kbps[w], count[w])
			}
		}
		if len(moves) != 7 { // 2 × 10 KBps for three workers, the 40 KBps lease alone on the fourth
			t.Fatalf("%d moves, want 7: %v", len(moves), moves)
		}
	})
	t.Run("balancing", func(t *testing.T) {
		var leases []Lease
		for i := range 8 {
			leases = append(leases, Lease{Key: fmt.Sprintf("l%d", i), Owner: "a", HasThroughput: true, ThroughputKBps: 10})
		}
		for seed := range uint64(20) {
			moves, err := Decide(cfg, leases, workers, true, newRNG(seed))
			if err != nil {
				t.Fatal(err)
			}
			_, kbps := tally(leases, moves)
			if len(moves) == 0 || kbps["b"] > 25 || kbps["c"] > 25 {
				t.Fatalf("seed %d: moves %v give %v", seed, moves, kbps)
			}
		}
	})
}

// TestHandoffBlockedNeverMoved: leases with a hand-off in flight stay where they are, whether the worker is
// hot, the lease is expired, or the strategy counts leases.
func TestHandoffBlockedNeverMoved(t *testing.T) {
	var leases []Lease
	for i := range 12 {
		l := Lease{Key: fmt.Sprintf("l%02d", i), Owner: "hot", HasThroughput: true, ThroughputKBps: float64(1 + i)}
		if i%3 != 0 {
			l.Owner, l.CheckpointOwner, l.HandoffBlocked = "cold", "hot", true
			l.Expired = i%2 == 0
		}
		leases = append(leases, l)
	}
	workers := []Worker{cpuWorker("hot", 90), cpuWorker("cold", 5), cpuWorker("idle", 0)}
	for _, strategy := range []Strategy{WorkerUtilizationAware, LeaseCountBased} {
		moved := 0
		for seed := range uint64(50) {
			moves, err := Decide(Config{Strategy: strategy}, leases, workers, true, newRNG(seed))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range moves {
				var l Lease
				for _, x := range leases {
					if x.Key == m.Key {
						l = x
					}
				}
				if l.HandoffBlocked {
					t.Fatalf("%v seed %d: blocked lease moved: %+v", strategy, seed, m)
				}
				if m.From != "hot" {
					t.Fatalf("%v: move %+v, want From hot", strategy, m)
				}
			}
			moved += len(moves)
		}
		if moved == 0 {
			t.Fatalf("%v: the unblocked leases of the hot worker never moved", strategy)
		}
	}
}

// TestHandoffCountsAgainstCheckpointOwner: a lease being handed off still weighs on its checkpoint owner
// (Java's actualOwner), and moves of it name that owner as From.
func TestHandoffCountsAgainstCheckpointOwner(t *testing.T) {
	// a holds 2 leases plus one being handed to b; b holds 1. Counted by leaseOwner it would be 2/2 and
	// nothing would move; counted by actual owner a has 3, so one lease moves to b.
	leases := []Lease{
		{Key: "1", Owner: "a"}, {Key: "2", Owner: "a"},
		{Key: "3", Owner: "b", CheckpointOwner: "a", HandoffBlocked: true},
		{Key: "4", Owner: "b"},
	}
	moves, err := Decide(Config{Strategy: LeaseCountBased}, leases, []Worker{{ID: "a"}, {ID: "b"}}, true, newRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 1 || moves[0].From != "a" || moves[0].To != "b" || moves[0].Key == "3" {
		t.Fatalf("moves %v, want one unblocked lease from a to b", moves)
	}

	// Throughput-only: a's share includes the 30 KBps lease in hand-off, so a is the donor.
	leases = []Lease{
		{Key: "x", Owner: "b", CheckpointOwner: "a", HasThroughput: true, ThroughputKBps: 30, HandoffBlocked: true},
		{Key: "y", Owner: "a", HasThroughput: true, ThroughputKBps: 5},
		{Key: "z", Owner: "b", HasThroughput: true, ThroughputKBps: 5},
	}
	moves, err = Decide(Config{}, leases, []Worker{{ID: "a"}, {ID: "b"}}, true, newRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 1 || moves[0] != (Move{Key: "y", From: "a", To: "b"}) {
		t.Fatalf("moves %v, want y from a to b", moves)
	}
}

// TestExpiredPendingHandoff: an expired lease whose hand-off never finished is rewritten even when it goes
// back to its checkpoint owner (Java's isPendingCheckpointExpired), so that checkpointOwner is cleared;
// an expired lease that goes back to its plain owner is left alone.
func TestExpiredPendingHandoff(t *testing.T) {
	for _, strategy := range []Strategy{WorkerUtilizationAware, LeaseCountBased} {
		leases := []Lease{
			{Key: "p", Owner: "gone", CheckpointOwner: "a", Expired: true},
			{Key: "q", Owner: "a", Expired: true},
		}
		moves, err := Decide(Config{Strategy: strategy}, leases, []Worker{{ID: "a"}}, true, newRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		if len(moves) != 1 || moves[0] != (Move{Key: "p", From: "a", To: "a", Expired: true}) {
			t.Fatalf("%v: moves %v, want p rewritten to a", strategy, moves)
		}
	}
}

func TestDecideDoesNotModifyInput(t *testing.T) {
	leases := unassigned(50, 2)
	leases[3].HasThroughput = false
	workers := []Worker{cpuWorker("a", 10), {ID: "b"}}
	before := fmt.Sprint(leases, workers)
	if _, err := Decide(Config{}, leases, workers, true, newRNG(1)); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprint(leases, workers); after != before {
		t.Fatal("Decide modified its input")
	}
}
