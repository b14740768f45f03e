package workerload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// cgroupRoot is where Java reads the cgroup files, relative to the root.
const cgroupRoot = "sys/fs/cgroup"

// maxCPUID bounds the CPU numbers accepted in a cpuset list. The kernel's
// NR_CPUS is at most 8192; a larger id means the file is not a cpuset.
const maxCPUID = 1 << 16

// parseCPUSet counts the CPUs of a cpuset list such as "0-3,5" (4+1 = 5),
// as Java's Cgroup.getAvailableCpusFromEffectiveCpuSet does. Unlike Java it
// parses single CPUs too and refuses an empty list, reversed ranges and
// what is not a number, naming the file and the group. name is the file,
// for errors.
func parseCPUSet(name string, data []byte) (int, error) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return 0, fmt.Errorf("%s: empty cpuset", name)
	}
	total := 0
	group := 0
	for rest := line; rest != nil; group++ {
		var g []byte
		g, rest = cutOrNil(rest, ',')
		lo, hi, isRange := bytes.Cut(g, []byte{'-'})
		a, err := parseCPUID(lo)
		if err != nil {
			return 0, fmt.Errorf("%s: group %d %q: %w", name, group+1, g, err)
		}
		b := a
		if isRange {
			if b, err = parseCPUID(hi); err != nil {
				return 0, fmt.Errorf("%s: group %d %q: %w", name, group+1, g, err)
			}
			if b < a {
				return 0, fmt.Errorf("%s: group %d %q: range ends before it starts", name, group+1, g)
			}
		}
		total += b - a + 1
		if total > maxCPUID {
			return 0, fmt.Errorf("%s: more than %d CPUs", name, maxCPUID)
		}
	}
	return total, nil
}

// cutOrNil is bytes.Cut that returns a nil rest when sep is absent, so a
// loop can tell "no more groups" from "an empty last group" ("0-3,").
func cutOrNil(s []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

func parseCPUID(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("missing CPU number")
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil || n > maxCPUID {
		return 0, fmt.Errorf("CPU number %q: not an integer in 0..%d", b, maxCPUID)
	}
	return int(n), nil
}

// readCPUSetFile counts the CPUs listed in a cpuset file.
func readCPUSetFile(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := parseCPUSet(path, data)
	return float64(n), err
}

// readInt reads a file holding one integer, such as cpuacct.usage or
// cpu.cfs_quota_us.
func readInt(path string, buf []byte) (int64, error) {
	data, err := readHead(path, buf)
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s line 1: %w", path, err)
	}
	return n, nil
}

// cpuDelta is the state shared by the cgroup sources: CPU time used by the
// cgroup against wall time, divided by the CPUs the cgroup may use.
type cpuDelta struct {
	name  string
	limit float64          // CPUs this cgroup may use, computed once, as in Java
	now   func() time.Time // monotonic; tests replace it

	primed    bool
	lastUsage uint64
	lastWall  time.Time
}

// percent turns a cumulative usage counter (unit = nanoseconds per unit, so
// 1000 for µs and 1 for ns) into Java's min(100, Δusage/Δwall/limit×100).
// The first call returns 0.
func (d *cpuDelta) percent(usage uint64, unit int64) (float64, error) {
	now := d.now()
	prevUsage, prevWall, primed := d.lastUsage, d.lastWall, d.primed
	if primed && !now.After(prevWall) {
		return 0, fmt.Errorf("%s: no time passed since the previous sample", d.name)
	}
	d.lastUsage, d.lastWall, d.primed = usage, now, true
	if !primed {
		return 0, nil
	}
	used := float64(int64(usage - prevUsage)) // negative if the counter was reset
	wall := float64(now.Sub(prevWall)) / float64(unit)
	return clampPercent(d.name, used/wall/d.limit*100)
}

// cgroupV2 is Java's Cgroupv2CpuWorkerMetric.
type cgroupV2 struct {
	stat string

	mu  sync.Mutex
	buf [1024]byte // cpu.stat is a few short lines
	cpuDelta
}

// NewCgroupV2 reads root/sys/fs/cgroup/cpu.stat (usage_usec) against the
// limit in cpu.max ("quota period", or "max" for the CPUs in
// cpuset.cpus.effective), computed once. A missing cpu.max (the root
// cgroup has none) counts as "max", where Java fails.
func NewCgroupV2(root string) (CPUSource, error) {
	if root == "" {
		root = "/"
	}
	dir := filepath.Join(root, cgroupRoot)
	limit, err := cgroupV2Limit(dir)
	if err != nil {
		return nil, err
	}
	return &cgroupV2{
		stat:     filepath.Join(dir, "cpu.stat"),
		cpuDelta: cpuDelta{name: "cgroup-v2", limit: limit, now: time.Now},
	}, nil
}

func cgroupV2Limit(dir string) (float64, error) {
	path := filepath.Join(dir, "cpu.max")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return readCPUSetFile(filepath.Join(dir, "cpuset.cpus.effective"))
	}
	if err != nil {
		return 0, err
	}
	limit, unlimited, err := parseCPUMax(path, data)
	if err != nil {
		return 0, err
	}
	if unlimited {
		return readCPUSetFile(filepath.Join(dir, "cpuset.cpus.effective"))
	}
	return limit, nil
}

// parseCPUMax reads cgroup v2's cpu.max, "$MAX $PERIOD" where $MAX is
// "max" or a quota in µs per period.
func parseCPUMax(name string, data []byte) (limit float64, unlimited bool, err error) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) != 2 {
		return 0, false, fmt.Errorf("%s line 1: %d fields, want 2 (\"$MAX $PERIOD\")", name, len(f))
	}
	period, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil || period == 0 {
		return 0, false, fmt.Errorf("%s line 1 field 2 (period) %q: want a positive integer", name, f[1])
	}
	if string(f[0]) == "max" {
		return 0, true, nil
	}
	quota, err := strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil || quota == 0 {
		return 0, false, fmt.Errorf("%s line 1 field 1 (quota) %q: want \"max\" or a positive integer", name, f[0])
	}
	return float64(quota) / float64(period), false, nil
}

func (c *cgroupV2) Name() string { return c.name }

// Sample returns the cgroup's CPU use since the previous Sample in percent
// of its limit; the first call returns 0.
func (c *cgroupV2) Sample(context.Context) (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := readHead(c.stat, c.buf[:])
	if err != nil {
		return 0, err
	}
	usage, err := parseUsageUsec(c.stat, data)
	if err != nil {
		return 0, err
	}
	return c.percent(usage, int64(time.Microsecond))
}

// parseUsageUsec finds "usage_usec N" in cgroup v2's cpu.stat. Java takes
// the first line's second word; the kernel writes usage_usec first, and we
// look it up by name so a reordered file cannot be misread.
func parseUsageUsec(name string, data []byte) (uint64, error) {
	for n, rest := 1, data; len(rest) > 0; n++ {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "usage_usec" {
			continue
		}
		if len(f) != 2 {
			return 0, fmt.Errorf("%s line %d: usage_usec has %d values, want 1", name, n, len(f)-1)
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s line %d: usage_usec: %w", name, n, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("%s: no usage_usec line", name)
}

// cgroupV1 is Java's Cgroupv1CpuWorkerMetric.
type cgroupV1 struct {
	usage string

	mu  sync.Mutex
	buf [64]byte
	cpuDelta
}

// cgroupV1Dirs are the cpu controller's directories, in order. Java reads
// only cpu/; hosts that mount cpu and cpuacct apart keep cpuacct.usage in
// cpuacct/, and some expose only the joint cpu,cpuacct/.
var cgroupV1Dirs = [...]string{"cpu", "cpuacct", "cpu,cpuacct"}

// NewCgroupV1 reads root/sys/fs/cgroup/cpu/cpuacct.usage (ns; also found in
// cpuacct/ or cpu,cpuacct/) against the limit cpu.cfs_quota_us /
// cpu.cfs_period_us, or, when the quota is -1 (or the files are absent),
// the CPUs in cpuset/cpuset.effective_cpus; the limit is computed once.
func NewCgroupV1(root string) (CPUSource, error) {
	if root == "" {
		root = "/"
	}
	dir := filepath.Join(root, cgroupRoot)
	var buf [64]byte
	usage := ""
	for _, d := range cgroupV1Dirs {
		p := filepath.Join(dir, d, "cpuacct.usage")
		if _, err := os.Stat(p); err == nil {
			usage = p
			break
		}
	}
	if usage == "" {
		return nil, fmt.Errorf("cgroup-v1: no cpuacct.usage in %s/cpu, cpuacct or cpu,cpuacct: %w", dir, fs.ErrNotExist)
	}
	limit, err := cgroupV1Limit(dir, buf[:])
	if err != nil {
		return nil, err
	}
	return &cgroupV1{
		usage:    usage,
		cpuDelta: cpuDelta{name: "cgroup-v1", limit: limit, now: time.Now},
	}, nil
}

func cgroupV1Limit(dir string, buf []byte) (float64, error) {
	cpuset := filepath.Join(dir, "cpuset", "cpuset.effective_cpus")
	for _, d := range [...]string{"cpu", "cpu,cpuacct"} {
		qp := filepath.Join(dir, d, "cpu.cfs_quota_us")
		if _, err := os.Stat(qp); err != nil {
			continue
		}
		quota, err := readInt(qp, buf)
		if err != nil {
			return 0, err
		}
		if quota == -1 {
			return readCPUSetFile(cpuset)
		}
		if quota <= 0 {
			return 0, fmt.Errorf("%s line 1: quota %d, want -1 or a positive integer", qp, quota)
		}
		pp := filepath.Join(dir, d, "cpu.cfs_period_us")
		period, err := readInt(pp, buf)
		if err != nil {
			return 0, err
		}
		if period <= 0 {
			return 0, fmt.Errorf("%s line 1: period %d, want a positive integer", pp, period)
		}
		return float64(quota) / float64(period), nil
	}
	return readCPUSetFile(cpuset)
}

func (c *cgroupV1) Name() string { return c.name }

// Sample returns the cgroup's CPU use since the previous Sample in percent
// of its limit; the first call returns 0.
func (c *cgroupV1) Sample(context.Context) (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := readInt(c.usage, c.buf[:])
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%s line 1: negative usage %d", c.usage, n)
	}
	return c.percent(uint64(n), int64(time.Nanosecond))
}
