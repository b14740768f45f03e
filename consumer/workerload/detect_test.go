package workerload

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestDetectCPUOrder(t *testing.T) {
	good := newFakeECS(t, recorded(t, "container.json"), recorded(t, "task.json"), recorded(t, "stats.json"))
	broken := newFakeECS(t, recorded(t, "container.json"), recorded(t, "task.json"), recorded(t, "stats.json"))
	broken.failNext("/stats", 1<<30)
	all := []string{"cgroupv2-quota", "cgroupv1-quota", "procstat"}
	for _, tc := range []struct {
		name  string
		trees []string
		ecs   string
		want  string
	}{
		{"ECS first when its URI is set", all, good.uri(), "ecs"},
		{"cgroup v2 before v1", all, "", "cgroup-v2"},
		{"cgroup v1 before /proc/stat", []string{"cgroupv1-noquota", "procstat"}, "", "cgroup-v1"},
		{"/proc/stat last", []string{"procstat"}, "", "proc-stat"},
		{"an unreadable ECS endpoint falls through", []string{"procstat"}, broken.uri(), "proc-stat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(ECSMetadataEnv, "")
			src, err := DetectCPU(Options{Root: tree(t, tc.trees...), ECSMetadataURI: tc.ecs})
			if err != nil {
				t.Fatal(err)
			}
			if src.Name() != tc.want {
				t.Fatalf("picked %s, want %s", src.Name(), tc.want)
			}
		})
	}
	t.Run("the environment names the ECS endpoint", func(t *testing.T) {
		t.Setenv(ECSMetadataEnv, good.uri())
		src, err := DetectCPU(Options{Root: tree(t, "procstat")})
		if err != nil || src.Name() != "ecs" {
			t.Fatalf("got %v, %v; want ecs", src, err)
		}
	})
	t.Run("nothing readable", func(t *testing.T) {
		t.Setenv(ECSMetadataEnv, "")
		src, err := DetectCPU(Options{Root: t.TempDir()})
		if !errors.Is(err, ErrNoCPU) || src != nil {
			t.Fatalf("got %v, %v; want ErrNoCPU", src, err)
		}
	})
	t.Run("a broken cgroup v2 falls through", func(t *testing.T) {
		t.Setenv(ECSMetadataEnv, "")
		root := tree(t, "cgroupv2-quota", "procstat")
		write(t, root+"/"+cgroupRoot+"/cpu.stat", "user_usec 1\n")
		src, err := DetectCPU(Options{Root: root})
		if err != nil || src.Name() != "proc-stat" {
			t.Fatalf("got %v, %v; want proc-stat", src, err)
		}
	})
}

// TestDetectCPUOnThisMachine reads the real system while a goroutine burns
// CPU: on Linux some source must be found and every reading must be a
// percentage. How high it reads depends on the machine's other load, so
// only the range is asserted.
func TestDetectCPUOnThisMachine(t *testing.T) {
	src, err := DetectCPU(Options{})
	if runtime.GOOS != "linux" {
		if !errors.Is(err, ErrNoCPU) {
			t.Fatalf("on %s: %v, %v; want ErrNoCPU", runtime.GOOS, src, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("no CPU source on this Linux machine: %v", err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		x := 1.0
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 10000 {
				x = x*1.0000001 + 1e-9
			}
		}
	}()
	defer func() { close(stop); <-done }()
	var got []float64
	for range 5 {
		time.Sleep(100 * time.Millisecond) // let CPU time pass between readings
		v, err := src.Sample(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", src.Name(), err)
		}
		if v < 0 || v > 100 {
			t.Fatalf("%s read %v, want 0..100", src.Name(), v)
		}
		got = append(got, v)
	}
	t.Logf("%s while burning one goroutine: %v", src.Name(), got)
}
