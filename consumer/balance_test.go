package consumer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// simulate runs taker rounds for workers over leases (key -> owner) until
// nothing changes, applying each plan as a successful conditional write
// would, and returns the lease count per worker and the rounds used.
func simulate(t *testing.T, owners map[string]string, workers []string, maxLeases int) (map[string]int, int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 1; round <= 100; round++ {
		changed := false
		for _, w := range workers {
			var views []leaseView
			held := map[string]bool{}
			keys := make([]string, 0, len(owners))
			for k := range owners {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				views = append(views, leaseView{key: k, owner: owners[k]})
				if owners[k] == w {
					held[k] = true
				}
			}
			p := planTakes(w, views, held, maxLeases, 1, rng)
			for _, k := range append(p.take, p.steal...) {
				owners[k] = w
				changed = true
			}
		}
		if !changed {
			counts := map[string]int{}
			for _, o := range owners {
				counts[o]++
			}
			return counts, round
		}
	}
	t.Fatal("no convergence in 100 rounds")
	return nil, 0
}

func leases(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("shardId-%012d", i)] = ""
	}
	return m
}

func TestSingleWorkerTakesEverythingInOneRound(t *testing.T) {
	owners := leases(16)
	rng := rand.New(rand.NewPCG(1, 2))
	var views []leaseView
	for k := range owners {
		views = append(views, leaseView{key: k})
	}
	p := planTakes("w1", views, nil, 0, 1, rng)
	if len(p.take) != 16 || len(p.steal) != 0 {
		t.Fatalf("take %d steal %d; want all 16 taken at once", len(p.take), len(p.steal))
	}
}

func TestWorkersConvergeToEvenSpread(t *testing.T) {
	owners := leases(8)
	counts, _ := simulate(t, owners, []string{"a", "b"}, 0)
	if counts["a"] != 4 || counts["b"] != 4 {
		t.Fatalf("two workers: %v, want 4/4", counts)
	}
	counts, rounds := simulate(t, owners, []string{"a", "b", "c"}, 0)
	for _, w := range []string{"a", "b", "c"} {
		if counts[w] < 2 || counts[w] > 3 {
			t.Fatalf("three workers: %v, want 3/3/2", counts)
		}
	}
	t.Logf("third worker settled in %d rounds: %v", rounds, counts)
}

func TestMaxLeasesPerWorker(t *testing.T) {
	owners := leases(10)
	counts, _ := simulate(t, owners, []string{"a"}, 4)
	if counts["a"] != 4 || counts[""] != 6 {
		t.Fatalf("%v, want 4 held and 6 unowned", counts)
	}
}

func TestExpiredLeasesAreTakenBeforeStealing(t *testing.T) {
	views := []leaseView{
		{key: "1", owner: "dead", expired: true}, {key: "2", owner: "dead", expired: true},
		{key: "3", owner: "b"}, {key: "4", owner: "b"}, {key: "5", owner: "b"},
	}
	p := planTakes("a", views, nil, 0, 1, rand.New(rand.NewPCG(1, 2)))
	slices.Sort(p.take)
	if !slices.Equal(p.take, []string{"1", "2"}) || len(p.steal) != 0 {
		t.Fatalf("plan %+v; want both expired leases and no steal", p)
	}
}

func TestLeaseOfEarlierRunOfThisWorkerIsTakenBack(t *testing.T) {
	views := []leaseView{{key: "1", owner: "a"}, {key: "2", owner: "b"}}
	p := planTakes("a", views, map[string]bool{}, 0, 1, rand.New(rand.NewPCG(1, 2)))
	if !slices.Equal(p.take, []string{"1"}) {
		t.Fatalf("plan %+v; want lease 1 taken back", p)
	}
}

func TestExpiryIsJudgedOnTheLocalClock(t *testing.T) {
	e := newExpiryTracker(10 * time.Second)
	t0 := time.Unix(1000, 0)
	ls := []lease{{key: "a", owner: "w", counter: 5}, {key: "b", counter: 1}}
	exp, next := e.observe(ls, t0)
	if exp["a"] || !exp["b"] {
		t.Fatalf("first sight: %v; an owned lease is live, an unowned one takeable", exp)
	}
	if !next.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("next = %v", next)
	}
	exp, _ = e.observe(ls, t0.Add(9*time.Second))
	if exp["a"] {
		t.Fatal("expired before the failover time")
	}
	ls[0].counter = 6 // renewed
	exp, next = e.observe(ls, t0.Add(11*time.Second))
	if exp["a"] || !next.Equal(t0.Add(21*time.Second)) {
		t.Fatalf("renewal must restart the clock: expired %v next %v", exp["a"], next)
	}
	exp, _ = e.observe(ls, t0.Add(21*time.Second))
	if !exp["a"] {
		t.Fatal("counter unchanged for the failover time but not expired")
	}
}
