package workerload

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// inRange is what every reading must be: Java's WorkerMetricValue accepts
// only 0..100.
func inRange(t *testing.T, what string, v float64, err error) {
	t.Helper()
	if err == nil && !(v >= 0 && v <= 100) {
		t.Fatalf("%s = %v, want 0..100 or an error", what, v)
	}
}

// FuzzProcStat parses two /proc/stat readings and computes the busy share
// between them: no input may panic, a parsed line must be the aggregate
// "cpu" line, and the share must be a percentage or an error.
func FuzzProcStat(f *testing.F) {
	stat, err := os.ReadFile(filepath.Join("testdata", "procstat", "proc", "stat"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stat, []byte("cpu  160 20 90 1000 50 50 50 70 0 0\n"))
	f.Add([]byte("cpu  1 2 3 4 5\n"), []byte("cpu  0 0 0 9 0\n"))
	f.Add([]byte("cpu  18446744073709551615 1 0 0 0\n"), []byte("cpu  0 0 0 1 0\n"))
	f.Add([]byte("cpu\t1\t2\t3\t4\t5"), []byte("cpu 1 2 3 4"))
	f.Add([]byte("intr 1\ncpu 1 2 3 4 5\n"), []byte(""))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		prev, errA := parseProcStat("stat", a)
		cur, errB := parseProcStat("stat", b)
		for _, r := range []struct {
			in  []byte
			err error
		}{{a, errA}, {b, errB}} {
			line, _, _ := strings.Cut(string(r.in), "\n")
			if f := strings.Fields(line); r.err == nil && (len(f) < 6 || f[0] != "cpu") {
				t.Fatalf("accepted %q", r.in)
			}
			if r.err != nil && !strings.Contains(r.err.Error(), "stat line 1") {
				t.Fatalf("error %q does not name the file and line", r.err)
			}
		}
		if errA != nil || errB != nil {
			return
		}
		v, err := procStatPercent("stat", prev, cur)
		inRange(t, "busy share", v, err)
	})
}

// refCPUSet counts a cpuset list independently of parseCPUSet, with the
// same rules: decimal CPU numbers up to maxCPUID, "a-b" with a <= b, at
// most maxCPUID CPUs in all.
func refCPUSet(data []byte) (int, bool) {
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return 0, false
	}
	num := func(s string) (int, bool) {
		if s == "" {
			return 0, false
		}
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			if n = n*10 + int(c-'0'); n > maxCPUID {
				return 0, false
			}
		}
		return n, true
	}
	total := 0
	for _, g := range strings.Split(line, ",") {
		lo, hi, isRange := strings.Cut(g, "-")
		a, ok := num(lo)
		if !ok {
			return 0, false
		}
		b := a
		if isRange {
			if b, ok = num(hi); !ok || b < a {
				return 0, false
			}
		}
		total += b - a + 1
		if total > maxCPUID {
			return 0, false
		}
	}
	return total, true
}

// FuzzCgroupCPUs feeds one input to the cgroup parsers: the cpuset count
// must agree with an independent count (CPUs > 0), a cpu.max limit must be
// a positive finite number of CPUs, and nothing may panic.
func FuzzCgroupCPUs(f *testing.F) {
	for _, s := range []string{"0-3,5", "0", "0-1,3\n", "0-4,6,8-10", "", "3-1", "0-3,", ",", "1-2-3", "0-65536",
		"00-0003", "+1", "max 100000", "50000 100000", "usage_usec 17\nuser_usec 1\n", " 7 ", "0-1\u00a0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := parseCPUSet("cpuset", data)
		want, ok := refCPUSet(data)
		if (err == nil) != ok || n != want {
			t.Fatalf("parseCPUSet(%q) = %d, %v; independent count %d, %v", data, n, err, want, ok)
		}
		if err == nil && n < 1 {
			t.Fatalf("parseCPUSet(%q) = %d CPUs", data, n)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "cpuset: ") {
			t.Fatalf("error %q does not name the file", err)
		}
		limit, unlimited, err := parseCPUMax("cpu.max", data)
		if err == nil && !unlimited && !(limit > 0 && !math.IsInf(limit, 0)) {
			t.Fatalf("parseCPUMax(%q) = %v CPUs", data, limit)
		}
		_, _ = parseUsageUsec("cpu.stat", data)
	})
}

// FuzzECSStats decodes a /stats response and computes the container's
// utilisation from it: a percentage or an error, never a panic.
func FuzzECSStats(f *testing.F) {
	for _, name := range []string{"stats.json", "stats-first.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "ecs", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 1.5)
	}
	f.Add([]byte(`{"cpu_stats":{"cpu_usage":{"total_usage":1},"system_cpu_usage":1},"precpu_stats":{"cpu_usage":{"total_usage":18446744073709551615},"system_cpu_usage":2}}`), 0.001)
	f.Add([]byte(`{"cpu_stats":{"cpu_usage":{"total_usage":"x"}}}`), 1.0)
	f.Add([]byte(`{"cpu_stats":{"online_cpus":-1}}`), 1.0)
	f.Add([]byte(`[]`), 1.0)
	f.Fuzz(func(t *testing.T, data []byte, limit float64) {
		s, err := parseECSStats("stats", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "stats: ") {
				t.Fatalf("error %q does not name the URL", err)
			}
			return
		}
		online := s.onlineCPUs()
		if online <= 0 || !(limit > 0) || math.IsInf(limit, 0) {
			return // Sample refuses these before computing (containerLimit is > 0)
		}
		v, err := ecsPercent("stats", s, online, limit)
		inRange(t, "container utilisation", v, err)
	})
}
