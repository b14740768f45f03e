// Package workerload measures a worker's load the way Java KCL 3.x does, so
// that a KCL 3.x leader (ours or Java's) can balance leases by utilisation:
//
//   - the worker's CPU utilisation, in percent of the CPU it may use
//     (WorkerMetricStats "C"), read from the ECS task metadata endpoint,
//     cgroup v2, cgroup v1 or /proc/stat, sampled every second and reported
//     as 30 s means in a bounded history (Stats, Sampler);
//   - the leader's smoothing of that history (EMA);
//   - each lease's throughput in KBps, written on every renewal
//     (Throughput, Java's LeaseStatsRecorder).
//
// Java reads CPU only when it detects ECS, EKS or EC2 (it calls IMDS to
// find EC2) and otherwise reports no metric, which puts the worker in the
// leader's throughput-only mode. We read CPU wherever Linux lets us
// (on-premises hosts, local Docker, any cloud), because a measured worker is
// balanced better than one judged by throughput alone, and we never call
// IMDS. On systems with none of these sources (macOS, Windows) DetectCPU
// returns ErrNoCPU and the worker is balanced on throughput only, as Java's
// would be.
package workerload

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/streamscore/streamscore/consumer/coordstate"
)

const (
	// DefaultSampleInterval is how often the CPU is sampled: Java's
	// WorkerUtilizationAwareAssignmentConfig.inMemoryWorkerMetricsCaptureFrequencyMillis.
	DefaultSampleInterval = 1 * time.Second
	// DefaultEMAAlpha weighs the newest stored value when the leader smooths
	// a worker's history: Java's workerMetricsEMAAlpha.
	DefaultEMAAlpha = 0.5
	// ThroughputEMAAlpha weighs the newest window of a lease's throughput:
	// Java's LeaseStatsRecorder.DEFAULT_ALPHA, which is not configurable.
	ThroughputEMAAlpha = 0.5
	// FailedReading is the history value of a report period in which no
	// sample was taken: the worker-metrics item's marker for a metric that
	// could not be read.
	FailedReading float64 = coordstate.FailedMetricValue
	// DefaultECSTimeout bounds each request to the ECS task metadata
	// endpoint when Options.HTTPClient is nil. Java sets no timeout; a hung
	// local endpoint would stall its sampling thread.
	DefaultECSTimeout = 2 * time.Second
	// ECSMetadataEnv names the variable the ECS agent sets to the task
	// metadata v4 root, as Java reads it.
	ECSMetadataEnv = "ECS_CONTAINER_METADATA_URI_V4"
)

// ErrNoCPU means no CPU source is readable on this system: the worker is
// then balanced on throughput only (Java's default "T" worker metric).
var ErrNoCPU = errors.New("workerload: no readable CPU source")

// CPUSource reads CPU utilisation in percent of what this worker may use
// (0..100), as Java's Linux, cgroup and ECS worker metrics do. The first
// Sample of a delta-based source returns 0, as Java's does, because it has
// no previous reading yet. A Sample error means the reading failed; the
// Sampler counts it as no sample.
type CPUSource interface {
	Name() string
	Sample(ctx context.Context) (float64, error)
}

// Options tell DetectCPU where to look. The zero value reads the real
// system.
type Options struct {
	// Root is the filesystem root under which /proc and /sys/fs/cgroup are
	// read; tests point it at testdata. "" means "/".
	Root string
	// ECSMetadataURI is the ECS task metadata v4 root
	// (ECS_CONTAINER_METADATA_URI_V4). "" means read the environment.
	ECSMetadataURI string
	// HTTPClient is used for the ECS endpoint. nil means a client with
	// DefaultECSTimeout.
	HTTPClient *http.Client
}

// DetectCPU picks the first CPU source that can be read, in Java's order
// of preference: the ECS task metadata endpoint (when its URI is set),
// cgroup v2 (when /sys/fs/cgroup/cgroup.controllers exists), cgroup v1,
// then /proc/stat. A candidate counts only if a first Sample succeeds, so a
// source that exists but cannot be parsed falls through to the next one
// (Java would keep it and report -1 forever). That first Sample is the
// source's baseline: the next one returns a real value.
//
// It returns ErrNoCPU, joined with each candidate's error, when nothing is
// readable. It takes no context because the only network call, to the ECS
// endpoint, is bounded by the HTTP client's timeout.
func DetectCPU(opts Options) (CPUSource, error) {
	ctx := context.Background()
	root := opts.Root
	if root == "" {
		root = "/"
	}
	uri := opts.ECSMetadataURI
	if uri == "" {
		uri = os.Getenv(ECSMetadataEnv)
	}
	var errs []error
	try := func(src CPUSource, err error) CPUSource {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if _, err := src.Sample(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: first sample: %w", src.Name(), err))
			return nil
		}
		return src
	}
	if uri != "" {
		if src := try(NewECS(uri, opts.HTTPClient), nil); src != nil {
			return src, nil
		}
	}
	controllers := filepath.Join(root, cgroupRoot, "cgroup.controllers")
	if _, err := os.Stat(controllers); err == nil {
		if src := try(NewCgroupV2(root)); src != nil {
			return src, nil
		}
	}
	if src := try(NewCgroupV1(root)); src != nil {
		return src, nil
	}
	if src := try(NewProcStat(root), nil); src != nil {
		return src, nil
	}
	return nil, errors.Join(append([]error{ErrNoCPU}, errs...)...)
}

// clampPercent applies Java's cap ("treat everything above 100% as 100%")
// and refuses what Java's WorkerMetricValue refuses: a negative value, which
// means a counter went backwards, so that reading counts as failed. NaN
// (which Java lets through) is refused as well.
func clampPercent(src string, v float64) (float64, error) {
	if math.IsNaN(v) || v < 0 {
		return 0, fmt.Errorf("%s: utilisation %v out of range (a counter went backwards?)", src, v)
	}
	return min(v, 100), nil
}
