package assign

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// fuzzInput decodes bytes into a valid Decide input: up to 8 workers (no metrics, CPU, CPU and memory, or
// an explicit "T"), up to 40 leases with any owner (none, a dead worker, a live one), hand-offs, expiry,
// blocked flags, missing throughputs and extreme values (0, 1e-300, 1e12).
type fuzzInput struct {
	cfg     Config
	leases  []Lease
	workers []Worker
	balance bool
	seed    uint64
}

func decodeFuzz(data []byte) fuzzInput {
	i := 0
	next := func() byte {
		if i >= len(data) {
			return 0
		}
		i++
		return data[i-1]
	}
	value := func() float64 {
		switch b := next(); b {
		case 255:
			return maxInputValue
		case 254:
			return 1e-300
		default:
			return float64(b) / 4
		}
	}
	var in fuzzInput
	flags := next()
	in.cfg.Strategy = Strategy(flags & 1)
	in.cfg.DisallowThroughputOvershoot = flags&2 != 0
	in.balance = flags&4 != 0
	if flags&8 != 0 {
		in.cfg.MaxLeasesPerWorker = int(next() % 6)
	}
	if flags&16 != 0 {
		in.cfg.MaxThroughputPerHostKBps = value()
	}
	in.cfg.ReBalanceThresholdPercent = float64(next() % 101)
	in.cfg.DampeningPercent = float64(next() % 101)
	in.seed = uint64(next())
	nw, nl := int(next()%9), int(next()%41)
	for w := range nw {
		wk := Worker{ID: fmt.Sprintf("w%d", w)}
		switch next() % 4 {
		case 1:
			wk.Metrics = map[string]Metric{CPUMetric: {Value: value(), Max: 1 + float64(next())}}
		case 2:
			wk.Metrics = map[string]Metric{CPUMetric: {Value: value(), Max: 100}, "M": {Value: value(), Max: 1 + float64(next())}}
		case 3:
			wk.Metrics = map[string]Metric{ThroughputMetric: {Value: value(), Max: 100}}
		}
		in.workers = append(in.workers, wk)
	}
	who := func(b byte) string {
		switch k := int(b) % (nw + 2); k {
		case 0:
			return ""
		case 1:
			return "dead"
		default:
			return in.workers[k-2].ID
		}
	}
	for l := range nl {
		f := next()
		ls := Lease{Key: fmt.Sprintf("l%d", l), Owner: who(next()), HasThroughput: f&1 != 0, Expired: f&2 != 0,
			HandoffBlocked: f&4 != 0, LastCounterIncrement: int64(f >> 5)}
		if f&8 != 0 {
			ls.CheckpointOwner = who(next())
		}
		if ls.HasThroughput {
			ls.ThroughputKBps = value()
		}
		in.leases = append(in.leases, ls)
	}
	return in
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// FuzzDecide: on any valid input Decide does not panic or fail, is reproducible for a seed, and every move
// is to a known worker, from the lease's actual owner, of a known and unblocked lease, once per lease; no
// worker that receives a lease ends above MaxLeasesPerWorker with more leases than it had, nor above
// MaxThroughputPerHostKBps unless it holds one lease or its load fell; and no computed load or metric is NaN.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{4, 10, 60, 1, 4, 16, 1, 80, 100, 0, 0, 3, 1, 20, 1, 2, 3, 9, 1, 3, 5})
	f.Add([]byte{5, 0, 0, 7, 3, 10, 0, 0, 0, 1, 2, 3, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
	f.Add([]byte{28, 3, 255, 50, 50, 2, 8, 40, 2, 255, 9, 1, 254, 30, 11, 2, 255, 3, 15, 4, 254})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := decodeFuzz(data)
		r, err := newRound(in.cfg, in.leases, in.workers, newRNG(in.seed))
		if err != nil {
			t.Fatalf("valid input rejected: %v", err)
		}
		before := slices.Clone(r.ws)
		r.run(in.balance)
		for _, w := range r.ws {
			if !finite(w.kbps) || w.kbps < 0 {
				t.Fatalf("worker %s load %v", w.id, w.kbps)
			}
		}
		if v := r.variance; v != nil {
			for _, x := range slices.Concat(v.val, v.fleetAvg) {
				if !finite(x) {
					t.Fatalf("metric value %v (values %v, averages %v)", x, v.val, v.fleetAvg)
				}
			}
			for _, k := range v.key {
				if math.IsNaN(k) {
					t.Fatalf("queue key NaN: %v", v.key)
				}
			}
		}
		moves, err := Decide(in.cfg, in.leases, in.workers, in.balance, newRNG(in.seed))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(moves, r.moves) {
			t.Fatalf("not reproducible: %v then %v", r.moves, moves)
		}
		seen := map[string]bool{}
		received := map[string]bool{}
		for _, m := range moves {
			i := slices.IndexFunc(in.leases, func(l Lease) bool { return l.Key == m.Key })
			if i < 0 {
				t.Fatalf("move of unknown lease %+v", m)
			}
			l := in.leases[i]
			if seen[m.Key] {
				t.Fatalf("lease moved twice: %v", moves)
			}
			seen[m.Key] = true
			if !slices.ContainsFunc(in.workers, func(w Worker) bool { return w.ID == m.To }) {
				t.Fatalf("move to unknown worker: %+v", m)
			}
			if m.From != l.actualOwner() {
				t.Fatalf("move %+v of lease %+v", m, l)
			}
			if l.HandoffBlocked {
				t.Fatalf("blocked lease moved: %+v", m)
			}
			if m.From == m.To && !(m.Expired && l.CheckpointOwner != "") {
				t.Fatalf("no-op move %+v of %+v", m, l)
			}
			if m.From != m.To {
				received[m.To] = true
			}
		}
		if limit := in.cfg.MaxThroughputPerHostKBps; limit > 0 && in.cfg.Strategy == WorkerUtilizationAware {
			// A donor that gets a smaller lease back in a swap may stay above the maximum; its load fell.
			for i, w := range r.ws {
				if received[w.id] && w.count > 1 && w.kbps > limit*(1+1e-9) && w.kbps > before[i].kbps {
					t.Fatalf("worker %s given leases up to %v KBps in %d leases, max %v", w.id, w.kbps, w.count, limit)
				}
			}
		}
		// A swap leaves counts as they were, also those of workers already above the maximum.
		if limit := in.cfg.MaxLeasesPerWorker; limit > 0 {
			for i, w := range r.ws {
				if received[w.id] && w.count > limit && w.count > before[i].count {
					t.Fatalf("worker %s holds %d leases, max %d", w.id, w.count, limit)
				}
			}
		}
	})
}
