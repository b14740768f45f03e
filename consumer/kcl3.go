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
	// 3.5's single table, whichever the application has). On a table in
	// migration it follows the recorded state (migration.go).
	ClientVersion3X ClientVersion = "3x"
	// ClientVersionCompatibleWith2X is the way from 2.x to 3.x (Java's
	// CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X): workers balance as 2.x
	// does and report their metrics until every lease owner does, then the
	// application moves to 3.x, with a way back (RollBackTo2X) until a
	// ClientVersion3X worker finishes the migration (migration.go).
	ClientVersionCompatibleWith2X ClientVersion = "2x-compatible"
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
	// MigrationPollInterval is how often a worker reads the application's
	// client version during a migration; MigrationReadyTime how long every
	// lease owner must have reported metrics before the move to 3.x.
	MigrationPollInterval time.Duration
	MigrationReadyTime    time.Duration
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
	if k.MigrationPollInterval <= 0 {
		k.MigrationPollInterval = DefaultMigrationPollInterval
	}
	if k.MigrationReadyTime <= 0 {
		k.MigrationReadyTime = DefaultMigrationReadyTime
	}
	if k.SampleInterval > k.MetricsInterval {
		return fmt.Errorf("consumer config: KCL3.SampleInterval %v is longer than MetricsInterval %v", k.SampleInterval, k.MetricsInterval)
	}
	return nil
}

// kcl3 is what a ClientVersion3X or ClientVersionCompatibleWith2X worker
// shares between its loops.
type kcl3 struct {
	layout  coordstate.Layout
	metrics *coordstate.Metrics
	leader  *coordstate.Leader
}

// setupKCL3 finds where the application's coordinator items live (three
// tables or one), creates what is missing as Java KCL 3.x would, reads or
// records the client version, and sees to the lease-owner index (waiting
// for it when the version is a 3.x one, as Java does). It returns the
// client version to start in.
func (c *Consumer) setupKCL3(ctx context.Context) (string, error) {
	layout, err := coordstate.DetectLayout(ctx, c.ddb, c.cfg.ApplicationName, c.cfg.LeaseTable)
	if err != nil {
		return "", err
	}
	if err := layout.Ensure(ctx, c.ddb); err != nil {
		return "", err
	}
	v, err := c.startingVersion(ctx, layout)
	if err != nil {
		return "", err
	}
	wait := v == coordstate.ClientVersion3X || v == coordstate.ClientVersion3XWithRollback
	if err := coordstate.EnsureLeaseOwnerIndex(ctx, c.ddb, c.cfg.LeaseTable, wait); err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		// Without the index (no UpdateTable permission, or a server that
		// cannot add one, as the local test server) workers still find
		// their leases, by a scan: slower and dearer, not wrong.
		c.log.Warn("no lease-owner index on the lease table; workers scan the table for their leases", "table", c.cfg.LeaseTable, "err", err)
	}
	c.k3 = &kcl3{
		layout:  layout,
		metrics: coordstate.NewMetrics(c.ddb, layout),
		leader:  coordstate.NewLeader(c.ddb, layout, c.cfg.KCL3.Leader),
	}
	return v, nil
}
