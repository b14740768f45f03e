package workerload

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tree copies testdata trees (merged) into a fresh root that the test may
// rewrite between samples.
func tree(t testing.TB, dirs ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range dirs {
		if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", d))); err != nil {
			t.Fatalf("copy testdata/%s: %v", d, err)
		}
	}
	return root
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// clock is a settable monotonic clock for the cgroup sources.
type clock struct{ now time.Time }

func (c *clock) read() time.Time         { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

// withClock gives a cgroup source a clock the test moves.
func withClock(t *testing.T, src CPUSource) *clock {
	t.Helper()
	c := &clock{now: time.Unix(1_764_770_000, 0)}
	switch s := src.(type) {
	case *cgroupV2:
		s.now = c.read
	case *cgroupV1:
		s.now = c.read
	default:
		t.Fatalf("no clock in %T", src)
	}
	return c
}

func sample(t *testing.T, src CPUSource) float64 {
	t.Helper()
	v, err := src.Sample(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", src.Name(), err)
	}
	return v
}

func TestProcStatPercentFromTwoReadings(t *testing.T) {
	root := tree(t, "procstat")
	stat := filepath.Join(root, "proc", "stat")
	src := NewProcStat(root)
	if v := sample(t, src); v != 0 {
		t.Fatalf("first sample = %v, want 0 (no delta yet, as Java)", v)
	}
	// usr 120->180 (user+nice), sys 50->90, idle 800->1000, iowait 30->50;
	// irq, softirq and steal move too and must not count: Δtot 320, Δidle 200.
	write(t, stat, "cpu  160 20 90 1000 50 50 50 70 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")
	if v := sample(t, src); v != 37.5 {
		t.Fatalf("busy share = %v, want 37.5 = (320-200)/320", v)
	}
	if v := sample(t, src); v != 0 {
		t.Fatalf("unchanged line = %v, want 0 (as Java)", v)
	}
	// Only irq moved: nothing counted changed; Java computes 0/0 = NaN.
	write(t, stat, "cpu  160 20 90 1000 50 99 50 70 0 0\n")
	if v := sample(t, src); v != 0 {
		t.Fatalf("only irq moved = %v, want 0", v)
	}
	// Idle grew by 100 while iowait went back 40 and the total grew 60: the
	// kernel's iowait quirk on an idle machine, 0 as Java.
	write(t, stat, "cpu  160 20 90 1100 10 99 50 70 0 0\n")
	if v := sample(t, src); v != 0 {
		t.Fatalf("iowait backwards = %v, want 0", v)
	}
	// A busy counter went backwards without iowait doing so: Java's
	// WorkerMetricValue refuses the negative share, so this reading fails.
	// Here user fell by 50 while idle grew by 100: Δtot 50 < Δidle 100.
	write(t, stat, "cpu  110 20 90 1200 10 99 50 70 0 0\n")
	if _, err := src.Sample(context.Background()); err == nil {
		t.Fatal("negative busy share accepted")
	}
	// The next reading measures from the refused one.
	write(t, stat, "cpu  160 20 90 1200 10 99 50 70 0 0\n")
	if v := sample(t, src); v != 100 {
		t.Fatalf("after a refused reading = %v, want 100 (Δtot 50, Δidle 0)", v)
	}
}

func TestProcStatParseErrorsNameFileAndField(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"cpu  1 2 x 4 5\n", "line 1 field 4 (system)"},
		{"cpu  1 2 3 4\n", "4 counters, want at least 5"},
		{"intr 1 2 3 4 5 6\ncpu  1 2 3 4 5\n", `line 1: want the aggregate "cpu" line`},
		{"cpu0 1 2 3 4 5\n", `line 1: want the aggregate "cpu" line`},
		{"", `line 1: want the aggregate "cpu" line`},
		{"cpu  1 2 3 -4 5\n", "line 1 field 5 (idle)"},
	} {
		root := t.TempDir()
		stat := filepath.Join(root, "proc", "stat")
		if err := os.MkdirAll(filepath.Dir(stat), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, stat, tc.content)
		_, err := NewProcStat(root).Sample(context.Background())
		if err == nil || !strings.Contains(err.Error(), stat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to name %s and %q", tc.content, err, stat, tc.want)
		}
	}
	if _, err := NewProcStat(t.TempDir()).Sample(context.Background()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing /proc/stat: %v, want ErrNotExist", err)
	}
}

func TestCgroupV2QuotaPercent(t *testing.T) {
	root := tree(t, "cgroupv2-quota") // cpu.max "50000 100000": half a CPU
	src, err := NewCgroupV2(root)
	if err != nil {
		t.Fatal(err)
	}
	clk := withClock(t, src)
	stat := filepath.Join(root, cgroupRoot, "cpu.stat")
	if v := sample(t, src); v != 0 {
		t.Fatalf("first sample = %v, want 0", v)
	}
	write(t, stat, "usage_usec 1250000\nuser_usec 900000\nsystem_usec 350000\n")
	clk.advance(time.Second)
	if v := sample(t, src); v != 50 {
		t.Fatalf("0.25 CPU-s in 1 s of a 0.5 CPU limit = %v%%, want 50", v)
	}
	write(t, stat, "usage_usec 3250000\n")
	clk.advance(time.Second)
	if v := sample(t, src); v != 100 {
		t.Fatalf("2 CPU-s in 1 s of a 0.5 CPU limit = %v%%, want capped at 100", v)
	}
	// A recreated cgroup restarts its counter: that reading fails, the
	// next one measures from it.
	write(t, stat, "usage_usec 1000\n")
	clk.advance(time.Second)
	if _, err := src.Sample(context.Background()); err == nil {
		t.Fatal("usage going backwards accepted")
	}
	write(t, stat, "usage_usec 101000\n")
	clk.advance(time.Second)
	if v := sample(t, src); v != 20 {
		t.Fatalf("0.1 CPU-s in 1 s of 0.5 = %v%%, want 20", v)
	}
	if _, err := src.Sample(context.Background()); err == nil {
		t.Fatal("a sample with no time passed was accepted")
	}
}

func TestCgroupV2MaxCountsEffectiveCPUs(t *testing.T) {
	root := tree(t, "cgroupv2-max") // "max 100000", cpuset "0-1,3": 3 CPUs
	src, err := NewCgroupV2(root)
	if err != nil {
		t.Fatal(err)
	}
	clk := withClock(t, src)
	sample(t, src)
	write(t, filepath.Join(root, cgroupRoot, "cpu.stat"), "usage_usec 5750000\n")
	clk.advance(time.Second)
	if v := sample(t, src); v != 25 {
		t.Fatalf("0.75 CPU-s in 1 s of 3 CPUs = %v%%, want 25", v)
	}
	// The root cgroup has no cpu.max: unlimited, where Java fails.
	if err := os.Remove(filepath.Join(root, cgroupRoot, "cpu.max")); err != nil {
		t.Fatal(err)
	}
	if src, err := NewCgroupV2(root); err != nil || src.(*cgroupV2).limit != 3 {
		t.Fatalf("without cpu.max: %v, want the 3 effective CPUs", err)
	}
}

func TestCgroupV2ParseErrorsNameFileAndField(t *testing.T) {
	for _, tc := range []struct{ file, content, want string }{
		{"cpu.max", "abc 100000\n", `field 1 (quota) "abc"`},
		{"cpu.max", "50000 0\n", `field 2 (period) "0"`},
		{"cpu.max", "50000\n", "1 fields, want 2"},
		{"cpuset.cpus.effective", "3-1\n", `group 1 "3-1": range ends before it starts`},
		{"cpuset.cpus.effective", "0-1,x\n", `group 2 "x"`},
	} {
		root := tree(t, "cgroupv2-max")
		path := filepath.Join(root, cgroupRoot, tc.file)
		write(t, path, tc.content)
		_, err := NewCgroupV2(root)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want it to name the file and %q", tc.file, tc.content, err, tc.want)
		}
	}
	for _, tc := range []struct{ content, want string }{
		{"user_usec 1\nsystem_usec 2\n", "no usage_usec line"},
		{"user_usec 1\nusage_usec 1.5\n", "line 2: usage_usec"},
	} {
		root := tree(t, "cgroupv2-max")
		path := filepath.Join(root, cgroupRoot, "cpu.stat")
		write(t, path, tc.content)
		src, err := NewCgroupV2(root)
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Sample(context.Background())
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cpu.stat %q: error %v, want it to name the file and %q", tc.content, err, tc.want)
		}
	}
}

func TestCgroupV1QuotaPercent(t *testing.T) {
	root := tree(t, "cgroupv1-quota") // 150000/100000: 1.5 CPUs
	src, err := NewCgroupV1(root)
	if err != nil {
		t.Fatal(err)
	}
	clk := withClock(t, src)
	if v := sample(t, src); v != 0 {
		t.Fatalf("first sample = %v, want 0", v)
	}
	write(t, filepath.Join(root, cgroupRoot, "cpu", "cpuacct.usage"), "2750000000\n")
	clk.advance(time.Second)
	if v := sample(t, src); v != 50 {
		t.Fatalf("0.75 CPU-s in 1 s of 1.5 CPUs = %v%%, want 50", v)
	}
}

func TestCgroupV1NoQuotaCountsEffectiveCPUs(t *testing.T) {
	// Quota -1, and cpuacct mounted apart from cpu (as on this project's CI
	// host), where Java finds no cpu/cpuacct.usage.
	root := tree(t, "cgroupv1-noquota")
	src, err := NewCgroupV1(root)
	if err != nil {
		t.Fatal(err)
	}
	clk := withClock(t, src)
	sample(t, src)
	write(t, filepath.Join(root, cgroupRoot, "cpuacct", "cpuacct.usage"), "27348532181908\n")
	clk.advance(2 * time.Second)
	if v := sample(t, src); v != 12.5 {
		t.Fatalf("0.5 CPU-s in 2 s of 2 CPUs = %v%%, want 12.5", v)
	}
}

func TestCgroupV1Errors(t *testing.T) {
	root := tree(t, "cgroupv1-quota")
	quota := filepath.Join(root, cgroupRoot, "cpu", "cpu.cfs_quota_us")
	write(t, quota, "lots\n")
	if _, err := NewCgroupV1(root); err == nil || !strings.Contains(err.Error(), quota+" line 1") {
		t.Errorf("bad quota: %v, want it to name %s line 1", err, quota)
	}
	write(t, quota, "0\n")
	if _, err := NewCgroupV1(root); err == nil || !strings.Contains(err.Error(), "quota 0") {
		t.Errorf("zero quota: %v", err)
	}
	if _, err := NewCgroupV1(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no cgroup v1: %v, want ErrNotExist", err)
	}
}
