package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/streamscore/streamscore/consumer/assign"
	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/consumer/workerload"
)

// ClientVersion says how the workers of an application share its leases,
// in Java KCL's terms.
type ClientVersion string

const (
	// ClientVersion2X is Java KCL 2.x's way, the default: every worker
	// takes unowned and expired leases and steals from the most loaded
	// worker until each holds ceil(leases/workers). Nothing but the lease
	// table is used.
	ClientVersion2X ClientVersion = "2x"
	// ClientVersion3X is Java KCL 3.x's way (CLIENT_VERSION_3X): one
	// leader, elected with a lock item, assigns leases by each worker's
	// CPU and each lease's throughput, and moves them with graceful
	// hand-offs; workers report their metrics, find their leases through
	// the LeaseOwnerToLeaseKeyIndex index, and never take or steal. It
	// shares a table with Java KCL 3.x workers (3.0-3.4's three tables or
	// 3.5's single table, whichever the application has).
	ClientVersion3X ClientVersion = "3x"
)

// DefaultHandoffTimeout is KCL3Config.HandoffTimeout's default (Java KCL's
// gracefulLeaseHandoffTimeoutMillis).
const DefaultHandoffTimeout = 30 * time.Second

// KCL3Config tunes ClientVersion3X. Zero values take Java KCL 3.x's
// defaults.
type KCL3Config struct {
	// AssignmentInterval is how often the leader assigns leases (Java's
	// leaseAssignmentIntervalMillis); default 2 x FailoverTime. Workers look
	// for leases assigned to them twice as often.
	AssignmentInterval time.Duration
	// Assign configures the assignment: strategy, thresholds, caps.
	// MaxLeasesPerWorker defaults to Config.MaxLeasesPerWorker.
	Assign assign.Config
	// BalanceEvery runs the load balancing every this many assignment
	// rounds (Java's varianceBalancingFrequency); unassigned and expired
	// leases are assigned every round.
	BalanceEvery int
	// HandoffTimeout bounds a graceful hand-off: a processor that has not
	// stopped by then loses the lease, which passes on from its last
	// durable checkpoint.
	HandoffTimeout time.Duration
	// DisableGracefulHandoff moves leases at once, as for expired ones:
	// the old owner stops at its next renewal without checkpointing.
	DisableGracefulHandoff bool
	// Leader configures the leader lock (Java's
	// dynamoDbLockBasedLeaderLeaseDurationInMillis and heartbeat).
	Leader coordstate.LeaderConfig
	// MetricsInterval is how often this worker writes its metrics item
	// (Java's workerMetricsReporterFreqInMillis); SampleInterval how often
	// it samples its CPU (inMemoryWorkerMetricsCaptureFrequencyMillis).
	MetricsInterval time.Duration
	SampleInterval  time.Duration
	// CPU reads this worker's CPU utilisation; nil detects it (ECS task
	// metadata, cgroup v2 or v1, /proc/stat).
	CPU workerload.CPUSource
	// DisableWorkerMetrics reports no CPU: the leader balances this worker
	// on its share of the throughput, as Java does for workers that report
	// none.
	DisableWorkerMetrics bool
}

func (k *KCL3Config) withDefaults(cfg *Config) error {
	if k.AssignmentInterval <= 0 {
		k.AssignmentInterval = 2 * cfg.FailoverTime
	}
	if k.Assign.MaxLeasesPerWorker == 0 {
		k.Assign.MaxLeasesPerWorker = cfg.MaxLeasesPerWorker
	}
	if k.BalanceEvery <= 0 {
		k.BalanceEvery = assign.DefaultVarianceBalancingFrequency
	}
	if k.HandoffTimeout <= 0 {
		k.HandoffTimeout = DefaultHandoffTimeout
	}
	k.Leader.Owner = cfg.WorkerID
	if k.Leader.LeaseDuration <= 0 {
		k.Leader.LeaseDuration = coordstate.DefaultLeaderLeaseDuration
	}
	if k.Leader.Heartbeat <= 0 {
		k.Leader.Heartbeat = coordstate.DefaultLeaderHeartbeat
	}
	if k.Leader.Heartbeat >= k.Leader.LeaseDuration {
		return fmt.Errorf("consumer config: KCL3.Leader.Heartbeat %v must be shorter than its LeaseDuration %v", k.Leader.Heartbeat, k.Leader.LeaseDuration)
	}
	if k.MetricsInterval <= 0 {
		k.MetricsInterval = coordstate.DefaultMetricsReportInterval
	}
	if k.SampleInterval <= 0 {
		k.SampleInterval = workerload.DefaultSampleInterval
	}
	if k.AssignmentInterval >= k.Leader.LeaseDuration-k.Leader.Heartbeat {
		// The lock heartbeats only when asked, once per assignment round.
		return fmt.Errorf("consumer config: KCL3.AssignmentInterval %v must be shorter than the leader lock's LeaseDuration less its Heartbeat (%v)", k.AssignmentInterval, k.Leader.LeaseDuration-k.Leader.Heartbeat)
	}
	if k.SampleInterval > k.MetricsInterval {
		return fmt.Errorf("consumer config: KCL3.SampleInterval %v is longer than MetricsInterval %v", k.SampleInterval, k.MetricsInterval)
	}
	return nil
}

// kcl3 is what a ClientVersion3X worker shares between its loops.
type kcl3 struct {
	layout  coordstate.Layout
	metrics *coordstate.Metrics
	leader  *coordstate.Leader
}

// setupKCL3 finds where the application's coordinator items live (three
// tables or one), creates what is missing as Java KCL 3.x would, waits for
// the lease-owner index, and records CLIENT_VERSION_3X in the migration
// state as a 3.x worker does on start.
func (c *Consumer) setupKCL3(ctx context.Context) error {
	layout, err := coordstate.DetectLayout(ctx, c.ddb, c.cfg.ApplicationName, c.cfg.LeaseTable)
	if err != nil {
		return err
	}
	if err := layout.Ensure(ctx, c.ddb); err != nil {
		return err
	}
	if err := coordstate.EnsureLeaseOwnerIndex(ctx, c.ddb, c.cfg.LeaseTable, true); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Without the index (no UpdateTable permission, or a server that
		// cannot add one, as the local test server) workers still find
		// their leases, by a scan: slower and dearer, not wrong.
		c.log.Warn("no lease-owner index on the lease table; workers scan the table for their leases", "table", c.cfg.LeaseTable, "err", err)
	}
	if err := c.recordClientVersion(ctx, layout); err != nil {
		return err
	}
	c.k3 = &kcl3{
		layout:  layout,
		metrics: coordstate.NewMetrics(c.ddb, layout),
		leader:  coordstate.NewLeader(c.ddb, layout, c.cfg.KCL3.Leader),
	}
	return nil
}

// recordClientVersion writes CLIENT_VERSION_3X to the migration state
// unless it says so already. A table still in a 2.x-compatible state is
// refused: its workers take and steal, and a 3.x leader would fight them.
func (c *Consumer) recordClientVersion(ctx context.Context, layout coordstate.Layout) error {
	want := coordstate.InitialMigration(coordstate.ClientVersion3X, c.cfg.WorkerID, time.Now())
	for range 3 {
		cur, ok, err := coordstate.GetMigration(ctx, c.ddb, layout)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			created, err := coordstate.CreateMigration(ctx, c.ddb, layout, want)
			if err != nil || created {
				return err
			}
		case cur.ClientVersion == coordstate.ClientVersion3X:
			return nil
		case cur.ClientVersion == coordstate.ClientVersion3XWithRollback:
			// Java's rule: a 3.x-configured worker finishes the migration.
			moved, err := coordstate.TransitionMigration(ctx, c.ddb, layout, cur.ClientVersion, want)
			if err != nil || moved {
				return err
			}
		default:
			return fmt.Errorf("consumer: lease table %s is in migration state %s: its workers balance as KCL 2.x does, and a 3.x worker would fight them; finish the migration first (docs/consumer.md)", c.cfg.LeaseTable, cur.ClientVersion)
		}
	}
	return fmt.Errorf("consumer: migration state of %s kept changing while it was being recorded", c.cfg.LeaseTable)
}
