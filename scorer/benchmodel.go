package scorer

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"syscall"
	"time"
)

// BenchOptions configures BenchModel.
type BenchOptions struct {
	// Cols are the input rows column-major in model feature order; when nil,
	// Rows random rows are generated (standard normal, MissingRate NaN).
	Cols        [][]float64
	Rows        int           // default 65,536
	Batch       int           // rows per Predict call; default 4,096
	MissingRate float64       // default 0.05
	Duration    time.Duration // how long to run; default 3 s
}

// BenchResult is what BenchModel measured.
type BenchResult struct {
	Rows       int64         // rows scored
	Elapsed    time.Duration // wall time spent scoring
	CPU        time.Duration // CPU time of the process while scoring
	RowsPerSec float64       // rows per wall-clock second
	// RowsPerCPUSec is rows per second of CPU time: on a shared machine it
	// is less disturbed by other processes than RowsPerSec.
	RowsPerCPUSec float64
}

// BenchModel measures single-goroutine Predict throughput (the goroutine is
// locked to one OS thread), cycling over the input in batches.
func BenchModel(m *Model, o BenchOptions) (BenchResult, error) {
	if o.Batch <= 0 {
		o.Batch = 4096
	}
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.MissingRate == 0 {
		o.MissingRate = 0.05
	}
	cols := o.Cols
	n := 0
	if cols == nil {
		if o.Rows <= 0 {
			o.Rows = 65536
		}
		n = o.Rows
		r := rand.New(rand.NewPCG(1, 2))
		cols = make([][]float64, len(m.Features()))
		for j := range cols {
			cols[j] = make([]float64, n)
			for i := range n {
				if r.Float64() < o.MissingRate {
					cols[j][i] = math.NaN()
				} else {
					cols[j][i] = r.NormFloat64()
				}
			}
		}
	} else if len(cols) > 0 {
		n = len(cols[0])
	}
	if n < o.Batch {
		return BenchResult{}, errors.New("bench: fewer input rows than one batch")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out := make([][]float64, m.Outputs())
	for k := range out {
		out[k] = make([]float64, o.Batch)
	}
	view := make([][]float64, len(cols))
	var s Scratch
	var res BenchResult
	cpu0 := cpuTime()
	start := time.Now()
	for {
		for off := 0; off+o.Batch <= n; off += o.Batch {
			for j := range cols {
				view[j] = cols[j][off : off+o.Batch]
			}
			if err := m.Predict(view, o.Batch, out, &s); err != nil {
				return res, err
			}
			res.Rows += int64(o.Batch)
		}
		if res.Elapsed = time.Since(start); res.Elapsed >= o.Duration {
			break
		}
	}
	res.CPU = cpuTime() - cpu0
	res.RowsPerSec = float64(res.Rows) / res.Elapsed.Seconds()
	if res.CPU > 0 {
		res.RowsPerCPUSec = float64(res.Rows) / res.CPU.Seconds()
	}
	return res, nil
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
