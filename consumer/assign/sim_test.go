package assign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// fleet simulates an application: leases with a fixed throughput, workers whose CPU is proportional to the
// throughput they hold (cpuPerKBps; 0 means the worker reports no CPU), and moves that take effect at once
// (the hand-off itself is the caller's business).
type fleet struct {
	keys       []string
	kbps       []float64
	owner      []string
	workers    []string
	cpuPerKBps map[string]float64
}

func newFleet(kbps []float64, workers []string, cpuPerKBps float64) *fleet {
	f := &fleet{kbps: kbps, owner: make([]string, len(kbps)), workers: workers, cpuPerKBps: map[string]float64{}}
	for i := range kbps {
		f.keys = append(f.keys, fmt.Sprintf("shardId-%012d", i))
	}
	for _, w := range workers {
		f.cpuPerKBps[w] = cpuPerKBps
	}
	return f
}

// hotShards is the case: 16 leases from 1 to 20 KBps (20x apart), evenly spread.
func hotShards() []float64 {
	out := make([]float64, 16)
	for i := range out {
		out[i] = 1 + 19*float64(i)/15
	}
	return out
}

func (f *fleet) leases() []Lease {
	out := make([]Lease, len(f.keys))
	for i := range f.keys {
		out[i] = Lease{Key: f.keys[i], Owner: f.owner[i], ThroughputKBps: f.kbps[i], HasThroughput: true,
			Expired: f.owner[i] == ""}
	}
	return out
}

func (f *fleet) load() map[string]float64 {
	out := map[string]float64{}
	for i, o := range f.owner {
		out[o] += f.kbps[i]
	}
	return out
}

func (f *fleet) view() []Worker {
	load := f.load()
	out := make([]Worker, len(f.workers))
	for i, w := range f.workers {
		out[i] = Worker{ID: w}
		if k := f.cpuPerKBps[w]; k > 0 {
			out[i].Metrics = map[string]Metric{CPUMetric: {Value: load[w] * k, Max: 100}}
		}
	}
	return out
}

// apply checks the moves (known lease, right From, known To, each lease once) and makes them.
func (f *fleet) apply(t *testing.T, moves []Move) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range moves {
		i := slices.Index(f.keys, m.Key)
		if i < 0 {
			t.Fatalf("move of unknown lease %q", m.Key)
		}
		if seen[m.Key] {
			t.Fatalf("lease %q moved twice in one round: %v", m.Key, moves)
		}
		seen[m.Key] = true
		if m.From != f.owner[i] {
			t.Fatalf("move %+v: lease is owned by %q", m, f.owner[i])
		}
		if !slices.Contains(f.workers, m.To) {
			t.Fatalf("move %+v to unknown worker", m)
		}
		f.owner[i] = m.To
	}
}

func (f *fleet) count(w string) (n int) {
	for _, o := range f.owner {
		if o == w {
			n++
		}
	}
	return n
}

func (f *fleet) state() string { return strings.Join(f.owner, ",") }

// runToRest runs leader rounds, balancing every DefaultVarianceBalancingFrequency-th round starting with the
// first (as Java's LAM does after taking leadership), until a balancing round moves nothing. It fails if
// that takes more than maxBalancingRounds, if a lease moves twice in a round, or if an assignment seen
// before comes back (an oscillation). It returns the number of balancing rounds that moved something.
func runToRest(t *testing.T, f *fleet, cfg Config, rng *rand.Rand, maxBalancingRounds int) int {
	t.Helper()
	seen := map[string]bool{}
	for round, balancing := 0, 0; ; round++ {
		balance := round%DefaultVarianceBalancingFrequency == 0
		moves, err := Decide(cfg, f.leases(), f.view(), balance, rng)
		if err != nil {
			t.Fatal(err)
		}
		f.apply(t, moves)
		if !balance {
			if len(moves) > 0 && round > 0 {
				t.Fatalf("round %d: %d moves without balancing and without expired leases: %v", round, len(moves), moves)
			}
			continue
		}
		if len(moves) == 0 {
			return balancing
		}
		balancing++
		if balancing > maxBalancingRounds {
			t.Fatalf("still moving after %d balancing rounds; load %v", maxBalancingRounds, f.load())
		}
		if s := f.state(); seen[s] {
			t.Fatalf("balancing round %d: assignment %s came back (oscillation)", balancing, s)
		} else {
			seen[s] = true
		}
	}
}

// assertAtRest runs rounds more rounds and fails on any move: once a balancing round moves nothing, the
// next ones do not either, whatever the shuffles.
func assertAtRest(t *testing.T, f *fleet, cfg Config, rng *rand.Rand, rounds int) {
	t.Helper()
	for round := range rounds {
		moves, err := Decide(cfg, f.leases(), f.view(), round%DefaultVarianceBalancingFrequency == 0, rng)
		if err != nil {
			t.Fatal(err)
		}
		if len(moves) > 0 {
			t.Fatalf("round %d after rest: moves %v; load %v", round, moves, f.load())
		}
	}
}

// balanceVerdict says whether every worker's throughput is within ±threshold of the mean, and, if not,
// whether the rest state is one the lease sizes force. Balancing takes from the workers at or above the
// upper limit (else the most loaded) and gives to the least loaded; forced means that for every such donor
// neither its smallest lease can go to the least loaded worker (leaving it at or below the mean, KCL's rule,
// or below the upper limit and below the donor, the granularity rule) nor can one of its leases be swapped
// for a smaller one of the least loaded worker so that their gap narrows and that worker stays below the
// upper limit. Those are the moves that provably do not oscillate (each lowers the sum of squared loads);
// with 16 leases of 1 to 20 KBps around a mean of 42 KBps a lease is up to half the band's width, so a
// ±10% split cannot always be reached by them.
func balanceVerdict(f *fleet, thresholdPercent float64) (inBand bool, forced bool, detail string) {
	load := f.load()
	var total float64
	for _, k := range f.kbps {
		total += k
	}
	mean := total / float64(len(f.workers))
	upper, lower := mean*(1+thresholdPercent/100), mean*(1-thresholdPercent/100)
	inBand = true
	least, most := f.workers[0], f.workers[0]
	var donors []string
	for _, w := range f.workers {
		if load[w] > upper || load[w] < lower {
			inBand = false
		}
		if load[w] >= upper {
			donors = append(donors, w)
		}
		// The receiver with the most room: least loaded, then fewest leases, then lowest ID (the queue order).
		if load[w] < load[least] || load[w] == load[least] && (f.count(w) < f.count(least) || f.count(w) == f.count(least) && w < least) {
			least = w
		}
		if load[w] > load[most] {
			most = w
		}
	}
	detail = fmt.Sprintf("mean %.2f band [%.2f, %.2f] load %v", mean, lower, upper, load)
	if inBand {
		return true, true, detail
	}
	if len(donors) == 0 {
		donors = []string{most}
	}
	forced = true
	for _, d := range donors {
		smallest := -1.0
		for i, o := range f.owner {
			if o == d && (smallest < 0 || f.kbps[i] < smallest) {
				smallest = f.kbps[i]
			}
		}
		// Java's rule (the receiver stays at or below the mean) or the granularity rule (below the upper
		// limit and below the donor). 1e-9: a receiver landing exactly on a limit may go either way.
		to := load[least] + smallest
		if smallest >= 0 && (to < mean*(1-1e-9) || to < upper*(1-1e-9) && to < load[d]*(1-1e-9)) {
			forced = false
		}
		// Nor a swap of one of d's leases for a smaller one of the least loaded worker that narrows
		// their gap and keeps that worker below the upper limit.
		for i, o := range f.owner {
			for j, p := range f.owner {
				net := f.kbps[i] - f.kbps[j]
				if o == d && p == least && net > 1e-9 && net < (load[d]-load[least])*(1-1e-9) && load[least]+net < upper*(1-1e-9) {
					forced = false
				}
			}
		}
	}
	return false, forced, detail
}

// layouts are the starting assignments of the hot-shard simulations.
var layouts = []struct {
	name string
	set  func(f *fleet, rng *rand.Rand)
}{
	{"unassigned", func(f *fleet, _ *rand.Rand) {}},
	{"all on one worker", func(f *fleet, _ *rand.Rand) {
		for i := range f.owner {
			f.owner[i] = f.workers[0]
		}
	}},
	{"hottest together", func(f *fleet, _ *rand.Rand) { // 4 leases each, the 4 hottest on the last worker
		for i := range f.owner {
			f.owner[i] = f.workers[i*len(f.workers)/len(f.owner)]
		}
	}},
	{"random", func(f *fleet, rng *rand.Rand) {
		for i := range f.owner {
			f.owner[i] = f.workers[rng.IntN(len(f.workers))]
		}
	}},
}

// TestHotShardsConverge is the hot-shard case: 16 leases whose throughput differs 20x, 4 workers
// whose CPU follows the throughput they hold. From every layout and many seeds, balancing comes to rest
// within a bounded number of balancing rounds without any assignment repeating, stays at rest, and rests
// with every worker within ±10% of the mean or, where the lease sizes do not allow it, in the forced state
// balanceVerdict describes.
func TestHotShardsConverge(t *testing.T) {
	workers := []string{"w0", "w1", "w2", "w3"}
	for _, cpu := range []struct {
		name string
		k    []float64 // CPU percent per KBps of each worker; 0: no CPU metric
	}{
		{"cpu", []float64{0.5, 0.5, 0.5, 0.5}},
		{"throughput only", []float64{0, 0, 0, 0}},
		{"mixed", []float64{0.5, 0, 0.5, 0}},
	} {
		for _, lay := range layouts {
			t.Run(cpu.name+"/"+lay.name, func(t *testing.T) {
				inBand, worst := 0, 0
				const seeds = 100
				for seed := range uint64(seeds) {
					rng := rand.New(rand.NewPCG(seed, 16))
					f := newFleet(hotShards(), workers, 0)
					for i, w := range workers {
						f.cpuPerKBps[w] = cpu.k[i]
					}
					lay.set(f, rng)
					n := runToRest(t, f, Config{}, rng, 8)
					worst = max(worst, n)
					assertAtRest(t, f, Config{}, rng, 30)
					ok, forced, detail := balanceVerdict(f, DefaultReBalanceThresholdPercent)
					if !forced {
						t.Fatalf("seed %d: at rest but a lease could still move: %s", seed, detail)
					}
					if ok {
						inBand++
					}
				}
				t.Logf("%d/%d seeds within ±10%% of the mean; at most %d balancing rounds with moves", inBand, seeds, worst)
				// The forced states are rare: 0 to 2 seeds in 100 per layout at the time of writing.
				if inBand < seeds*95/100 {
					t.Fatalf("only %d/%d seeds within ±10%% of the mean", inBand, seeds)
				}
			})
		}
	}
}
