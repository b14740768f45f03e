package assign

import (
	"fmt"
	"slices"
	"testing"
)

// TestCountBasedConverges: from any starting spread, one balancing round reaches ceil(n/workers) on the
// most loaded workers and the rest one below, and the next round moves nothing.
func TestCountBasedConverges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		owners []string // per lease; "" unassigned
		want   []int    // sorted lease counts per worker after one round
		maxPer int
	}{
		{"8 leases on one of 3 workers", rep("a", 8), []int{2, 3, 3}, 0},
		{"8 leases 6/1/1", append(rep("a", 6), "b", "c"), []int{2, 3, 3}, 0},
		{"8 unassigned", rep("", 8), []int{2, 3, 3}, 0},
		{"9 leases 5/4/0", append(rep("a", 5), rep("b", 4)...), []int{3, 3, 3}, 0},
		{"2 leases 3 workers", rep("a", 2), []int{0, 1, 1}, 0},
		{"12 leases capped at 3", rep("a", 12), []int{3, 3, 6}, 3}, // a keeps its excess: Java never moves it to nobody
		{"7 unassigned capped at 2", rep("", 7), []int{2, 2, 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Strategy: LeaseCountBased, MaxLeasesPerWorker: tc.maxPer}
			workers := []Worker{{ID: "a"}, {ID: "b"}, {ID: "c"}}
			leases := make([]Lease, len(tc.owners))
			for i, o := range tc.owners {
				leases[i] = Lease{Key: fmt.Sprintf("l%d", i), Owner: o}
			}
			for seed := range uint64(10) {
				ls := slices.Clone(leases)
				moves, err := Decide(cfg, ls, workers, true, newRNG(seed))
				if err != nil {
					t.Fatal(err)
				}
				count, _ := tally(ls, moves)
				got := []int{count["a"], count["b"], count["c"]}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("seed %d: counts %v, want %v (moves %v)", seed, got, tc.want, moves)
				}
				for _, m := range moves {
					ls[slices.IndexFunc(ls, func(l Lease) bool { return l.Key == m.Key })].Owner = m.To
				}
				again, err := Decide(cfg, ls, workers, true, newRNG(seed+100))
				if err != nil {
					t.Fatal(err)
				}
				if len(again) != 0 {
					t.Fatalf("seed %d: second round moves %v", seed, again)
				}
			}
		})
	}
}

// TestCountBasedOneMovePerLease: leases assigned from expiry are not moved again by the balancing in the
// same round, and each move starts from the lease's actual owner.
func TestCountBasedOneMovePerLease(t *testing.T) {
	owners := append(rep("a", 5), rep("", 5)...)
	leases := make([]Lease, len(owners))
	for i, o := range owners {
		leases[i] = Lease{Key: fmt.Sprintf("l%d", i), Owner: o}
	}
	for seed := range uint64(20) {
		moves, err := Decide(Config{Strategy: LeaseCountBased}, leases, []Worker{{ID: "a"}, {ID: "b"}, {ID: "c"}}, true, newRNG(seed))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, m := range moves {
			if seen[m.Key] {
				t.Fatalf("seed %d: %s moved twice: %v", seed, m.Key, moves)
			}
			seen[m.Key] = true
		}
		count, _ := tally(leases, moves)
		// Target ceil(10/3) = 4: the unassigned leases go to b and c (3 and 2), then balancing moves one
		// of a's 5 to the one with 2.
		if count["a"] != 4 || count["b"] != 3 || count["c"] != 3 {
			t.Fatalf("seed %d: counts %v, want 4/3/3", seed, count)
		}
	}
}

func rep(s string, n int) []string { return slices.Repeat([]string{s}, n) }
