package assign

import (
	"fmt"
	"testing"
)

// benchInput is a large application: 10k leases on 100 CPU-reporting workers, throughput 0-100 KBps, CPU
// 20-80%, 1% of the leases expired (their worker died), so one round assigns 100 leases and balances.
func benchInput() ([]Lease, []Worker) {
	rng := newRNG(7)
	workers := make([]Worker, 100)
	for i := range workers {
		workers[i] = cpuWorker(fmt.Sprintf("worker-%03d", i), 20+60*rng.Float64())
	}
	leases := make([]Lease, 10000)
	for i := range leases {
		leases[i] = Lease{Key: fmt.Sprintf("shardId-%012d", i), Owner: workers[rng.IntN(len(workers))].ID,
			ThroughputKBps: 100 * rng.Float64(), HasThroughput: i%50 != 0}
		if i%100 == 0 {
			leases[i].Owner, leases[i].Expired = "dead-worker", true
		}
	}
	return leases, workers
}

func BenchmarkDecide(b *testing.B) {
	leases, workers := benchInput()
	for _, strategy := range []Strategy{WorkerUtilizationAware, LeaseCountBased} {
		b.Run(strategy.String(), func(b *testing.B) {
			rng := newRNG(1)
			b.ReportAllocs()
			moves := 0
			for b.Loop() {
				m, err := Decide(Config{Strategy: strategy}, leases, workers, true, rng)
				if err != nil {
					b.Fatal(err)
				}
				moves = len(m)
			}
			b.ReportMetric(float64(moves), "moves/op")
		})
	}
}
