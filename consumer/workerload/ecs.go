package workerload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// maxECSBody bounds what is read from one metadata response; a task's
// metadata is a few KB.
const maxECSBody = 1 << 20

// minECSShares is what the ECS agent gives a container without a CPU
// value, and what Java assumes for a container it cannot find.
const minECSShares = 2

// ecsStats is the part of ${ECS_CONTAINER_METADATA_URI_V4}/stats (Docker's
// container stats) that Java's EcsCpuWorkerMetric reads. Absent fields are
// 0, as Jackson's asLong gives.
type ecsStats struct {
	CPU    ecsCPUStats `json:"cpu_stats"`
	PreCPU ecsCPUStats `json:"precpu_stats"`
}

type ecsCPUStats struct {
	Usage struct {
		Total  uint64   `json:"total_usage"`
		PerCPU []uint64 `json:"percpu_usage"`
	} `json:"cpu_usage"`
	System     uint64 `json:"system_cpu_usage"`
	OnlineCPUs uint64 `json:"online_cpus"`
}

// parseECSStats decodes a /stats response. name is the URL, for errors;
// a wrongly typed value is named by its JSON path.
func parseECSStats(name string, data []byte) (ecsStats, error) {
	var s ecsStats
	if err := json.Unmarshal(data, &s); err != nil {
		return ecsStats{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// onlineCPUs is cpu_stats.online_cpus or, when the daemon omits it,
// the length of percpu_usage, as Docker's API documents.
func (s ecsStats) onlineCPUs() float64 {
	if s.CPU.OnlineCPUs > 0 {
		return float64(s.CPU.OnlineCPUs)
	}
	return float64(len(s.CPU.Usage.PerCPU))
}

// ecsTask is the part of ${ECS_CONTAINER_METADATA_URI_V4}/task that Java
// reads: the task's CPU limit in vCPUs and each container's CPU shares.
type ecsTask struct {
	Limits *struct {
		CPU *float64 `json:"CPU"`
	} `json:"Limits"`
	Containers []ecsContainer `json:"Containers"`
}

// ecsContainer is a container's metadata, also what
// ${ECS_CONTAINER_METADATA_URI_V4} itself returns for this container.
type ecsContainer struct {
	DockerID string `json:"DockerId"`
	Limits   struct {
		CPU float64 `json:"CPU"` // CPU units (1024 per vCPU)
	} `json:"Limits"`
}

// ecs is Java's EcsCpuWorkerMetric: the container's CPU use, from the ECS
// agent's view of Docker's stats, against its share of the task's CPU.
type ecs struct {
	root   string
	client *http.Client

	mu     sync.Mutex
	limit  float64 // CPUs this container may use; 0 until known
	online float64 // online_cpus as first seen, as Java keeps it
}

// NewECS reads the ECS task metadata endpoint v4 at uri. A nil client
// means one with DefaultECSTimeout.
func NewECS(uri string, c *http.Client) CPUSource {
	if c == nil {
		c = &http.Client{Timeout: DefaultECSTimeout}
	}
	return &ecs{root: strings.TrimSuffix(uri, "/"), client: c}
}

func (e *ecs) Name() string { return "ecs" }

// Sample returns the container's CPU use between the agent's last two
// stats reads in percent of the container's limit: 0 while the agent has
// no previous read, 100 when no system time passed (both as Java).
func (e *ecs) Sample(ctx context.Context) (float64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	url := e.root + "/stats"
	body, err := e.get(ctx, url)
	if err != nil {
		return 0, err
	}
	s, err := parseECSStats(url, body)
	if err != nil {
		return 0, err
	}
	if e.limit == 0 {
		// Java computes the limit once, but also marks it computed when the
		// /task read fails, which leaves its limit at -1 and every later
		// reading refused; we retry until it is known.
		online := s.onlineCPUs()
		if online <= 0 {
			return 0, fmt.Errorf("%s: cpu_stats.online_cpus and percpu_usage are both missing", url)
		}
		limit, err := e.containerLimit(ctx, online)
		if err != nil {
			return 0, err
		}
		e.limit, e.online = limit, online
	}
	return ecsPercent(url, s, e.online, e.limit)
}

// ecsPercent is Java's min(100, Δtotal/Δsystem × online / limit × 100)
// between the agent's previous and current reads.
func ecsPercent(name string, s ecsStats, online, limit float64) (float64, error) {
	if s.PreCPU.Usage.Total == 0 && s.PreCPU.System == 0 {
		return 0, nil
	}
	used := float64(int64(s.CPU.Usage.Total - s.PreCPU.Usage.Total))
	system := int64(s.CPU.System - s.PreCPU.System)
	if system == 0 {
		return 100, nil
	}
	cores := used / float64(system) * online
	return clampPercent(name, cores/limit*100)
}

// containerLimit is the container's share of the task's CPUs:
// myShares / ΣShares × taskLimit, where taskLimit is the task's Limits.CPU
// (vCPUs) or online when the task has none. A container without shares
// (0 or 1) counts as minECSShares, as the agent runs it; Java counts it as
// 0, which makes its limit 0 (always 100 %) or NaN.
func (e *ecs) containerLimit(ctx context.Context, online float64) (float64, error) {
	taskURL := e.root + "/task"
	body, err := e.get(ctx, taskURL)
	if err != nil {
		return 0, err
	}
	var task ecsTask
	if err := json.Unmarshal(body, &task); err != nil {
		return 0, fmt.Errorf("%s: %w", taskURL, err)
	}
	body, err = e.get(ctx, e.root)
	if err != nil {
		return 0, err
	}
	var me ecsContainer
	if err := json.Unmarshal(body, &me); err != nil {
		return 0, fmt.Errorf("%s: %w", e.root, err)
	}
	taskLimit := online
	if task.Limits != nil && task.Limits.CPU != nil {
		taskLimit = *task.Limits.CPU
	}
	if !(taskLimit > 0) {
		return 0, fmt.Errorf("%s: Limits.CPU %v: want a positive number of vCPUs", taskURL, taskLimit)
	}
	mine, sum := float64(minECSShares), 0.0
	for _, c := range task.Containers {
		shares := max(float64(int64(c.Limits.CPU)), minECSShares) // Java's asInt truncates
		if c.DockerID == me.DockerID {
			mine = shares
		}
		sum += shares
	}
	if sum == 0 {
		// No containers listed: Java divides by zero; the container has the task.
		return taskLimit, nil
	}
	return mine / sum * taskLimit, nil
}

func (e *ecs) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("ECS metadata %s: %w", url, err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ECS metadata: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxECSBody))
	if err != nil {
		return nil, fmt.Errorf("ECS metadata %s: read: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ECS metadata %s: status %s", url, resp.Status)
	}
	return body, nil
}
