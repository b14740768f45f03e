package workerload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// cpuTimes are the fields of /proc/stat's aggregate "cpu" line that Java's
// LinuxCpuWorkerMetric uses, in USER_HZ ticks.
type cpuTimes struct {
	usr, sys, idl, iow uint64 // usr = user + nice
}

func (c cpuTimes) total() uint64 { return c.usr + c.sys + c.idl + c.iow }

// procStatNames are the first five counters of the "cpu" line, for errors.
var procStatNames = [...]string{"user", "nice", "system", "idle", "iowait"}

// parseProcStat reads the first line of /proc/stat, which must be the
// aggregate "cpu" line: "cpu user nice system idle iowait irq softirq …".
// irq, softirq and steal are ignored, as in Java. name is the file, for
// errors.
func parseProcStat(name string, data []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	fields := bytes.Fields(line)
	if len(fields) == 0 || string(fields[0]) != "cpu" {
		return cpuTimes{}, fmt.Errorf("%s line 1: want the aggregate \"cpu\" line, got %.40q", name, line)
	}
	if len(fields) < 1+len(procStatNames) {
		return cpuTimes{}, fmt.Errorf("%s line 1: %d counters, want at least %d (user nice system idle iowait)",
			name, len(fields)-1, len(procStatNames))
	}
	var v [len(procStatNames)]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(fields[i+1]), 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("%s line 1 field %d (%s): %w", name, i+2, procStatNames[i], err)
		}
		v[i] = n
	}
	// Sums wrap like Java's longs would overflow; counters in ticks never
	// get near 2^63 on a real system.
	return cpuTimes{usr: v[0] + v[1], sys: v[2], idl: v[3], iow: v[4]}, nil
}

// procStat is Java's LinuxCpuWorkerMetric: the share of non-idle time of
// the whole machine since the previous sample, iowait counted as busy.
type procStat struct {
	path string

	mu     sync.Mutex
	buf    [512]byte // the "cpu" line is about 100 bytes; the rest of the file is not read
	primed bool
	last   cpuTimes
	line   []byte // the previous "cpu" line, to spot an unchanged file as Java does
}

// NewProcStat reads root/proc/stat. It does not touch the file until the
// first Sample.
func NewProcStat(root string) CPUSource {
	if root == "" {
		root = "/"
	}
	return &procStat{path: filepath.Join(root, "proc", "stat")}
}

func (p *procStat) Name() string { return "proc-stat" }

// Sample returns 0 on the first call, when the line did not change, and
// when idle grew more than the total because iowait went backwards (all as
// Java); it fails when the busy share is negative for another reason (Java's
// WorkerMetricValue refuses it). When no counted field moved it returns 0
// where Java returns NaN.
func (p *procStat) Sample(context.Context) (float64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	data, err := readHead(p.path, p.buf[:])
	if err != nil {
		return 0, err
	}
	line, _, found := bytes.Cut(data, []byte{'\n'})
	if !found && len(data) == len(p.buf) {
		return 0, fmt.Errorf("%s line 1: longer than %d bytes", p.path, len(p.buf))
	}
	cur, err := parseProcStat(p.path, line)
	if err != nil {
		return 0, err
	}
	prev, primed := p.last, p.primed
	unchanged := bytes.Equal(line, p.line)
	p.last, p.primed = cur, true
	p.line = append(p.line[:0], line...)
	if !primed || unchanged {
		return 0, nil
	}
	return procStatPercent(p.path, prev, cur)
}

// procStatPercent is Java's busy share between two readings:
// (Δtotal − Δidle) / Δtotal × 100, with Java's absolute differences.
func procStatPercent(name string, prev, cur cpuTimes) (float64, error) {
	dIdl := absDiff(cur.idl, prev.idl)
	dTot := absDiff(cur.total(), prev.total())
	if dTot < dIdl && cur.iow < prev.iow {
		// The kernel may move iowait backwards on an idle machine
		// (Documentation/filesystems/proc.rst); Java reports 0 then.
		return 0, nil
	}
	if dTot == 0 {
		return 0, nil
	}
	pct := (float64(dTot) - float64(dIdl)) / float64(dTot) * 100
	return clampPercent(name, pct)
}

// absDiff is Java's Math.abs(a - b) on counters.
func absDiff(a, b uint64) uint64 {
	if a >= b {
		return a - b
	}
	return b - a
}

// readHead reads the start of a small kernel file into buf without
// allocating a buffer per call: proc and cgroup files are generated on
// read, and their first line is all we need.
func readHead(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return buf[:n], nil
}
