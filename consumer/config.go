package consumer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults, chosen to match Java KCL where it has an equivalent.
const (
	DefaultFailoverTime      = 10 * time.Second
	DefaultShardSyncInterval = 60 * time.Second
	// DefaultCompletedLeaseRetention is Config.CompletedLeaseRetention's
	// default (Java KCL's completedLeaseCleanupIntervalMillis).
	DefaultCompletedLeaseRetention = 5 * time.Minute
	DefaultMaxRecords              = 10000
	DefaultIdleInterval            = 200 * time.Millisecond
	DefaultParentPollInterval      = time.Second
	DefaultSubscriptionLifetime    = 4*time.Minute + 50*time.Second
	DefaultMaxLeasesToSteal        = 1
	// DefaultFailureBackoff and DefaultMaxFailureBackoff bound the retries
	// of a failed shard (processor error or fatal read error): 1 s doubling
	// to 5 minutes, slow enough not to hammer a refusing service, quick
	// enough that fixing IAM or a sink recovers without a restart.
	DefaultFailureBackoff    = time.Second
	DefaultMaxFailureBackoff = 5 * time.Minute
)

// Config configures a Consumer. Zero values take the defaults above.
type Config struct {
	// ApplicationName names the lease table (unless LeaseTable is set) and
	// the enhanced fan-out consumer, as Java KCL's applicationName does.
	ApplicationName string
	// LeaseTable overrides the lease table name.
	LeaseTable string
	// WorkerID identifies this worker in the lease table. It must be unique
	// among running workers; the default is the host name plus a random
	// suffix.
	WorkerID string
	// Streams lists the streams to consume; all share one lease table.
	Streams []StreamConfig
	// ClientVersion selects how workers share leases: ClientVersion2X
	// (default: every worker takes and steals by count), ClientVersion3X
	// (a leader assigns by load, with graceful hand-offs) or
	// ClientVersionCompatibleWith2X (the migration from the first to the
	// second). KCL3 tunes the latter two.
	ClientVersion ClientVersion
	KCL3          KCL3Config
	// MultiStream selects Java KCL's multi-stream lease keys
	// ("account:stream:creationEpoch:shardId") even for a single stream. It
	// is implied when more than one stream is configured.
	MultiStream bool

	// FailoverTime is how long a lease's counter must be seen unchanged
	// before another worker takes it (Java KCL failoverTimeMillis).
	FailoverTime time.Duration
	// RenewInterval is how often held leases are renewed and durable
	// checkpoints written, and how often the lease table is scanned for
	// leases to take. Default FailoverTime/3.
	RenewInterval time.Duration
	// ShardSyncInterval is how often ListShards runs to discover new shards.
	ShardSyncInterval time.Duration
	// MaxLeasesPerWorker caps the leases this worker holds; 0 means no cap.
	MaxLeasesPerWorker int
	// MaxLeasesToStealAtOnce caps the leases stolen in one taker round.
	MaxLeasesToStealAtOnce int
	// ParentPollInterval is how often a child shard checks whether its
	// parents have reached SHARD_END.
	ParentPollInterval time.Duration
	// CompletedLeaseRetention is how long the lease of a shard read to its
	// end is kept once every child shard has a lease (or the shard has aged
	// out of the stream) before the shard sync deletes it, as Java KCL's
	// lease cleanup does. Without it a stream that reshards grows its lease
	// table forever. Default 5 minutes; negative keeps every lease.
	CompletedLeaseRetention time.Duration

	// MaxRecords is the GetRecords limit per call (at most 10000).
	MaxRecords int32
	// IdleInterval is the pause between GetRecords calls once the reader has
	// caught up with the tip of the shard. A reader that is behind calls
	// again at once.
	IdleInterval time.Duration
	// FanOut selects enhanced fan-out (SubscribeToShard) instead of polling.
	// On a subscription error the shard falls back to polling.
	FanOut bool
	// FanOutConsumerName is the enhanced fan-out consumer registered on
	// each stream. Default: ApplicationName. IAM policies scoped to the
	// consumer's ARN name it.
	FanOutConsumerName string
	// IdleHeartbeat, when positive, calls the processor with an empty batch
	// after a shard has delivered nothing for this long, and again every
	// IdleHeartbeat while it stays quiet. Handlers with time-driven work
	// (closing event-time windows of an idle shard) need to hear from the
	// shard even when no records come. Zero: batches carry records only.
	IdleHeartbeat time.Duration
	// SubscriptionLifetime is when a fan-out subscription is renewed from
	// its continuation sequence number; Kinesis ends them at 5 minutes.
	SubscriptionLifetime time.Duration
	// FailureBackoff is the first wait before a failed shard is retried
	// (the processor returned an error, or Kinesis refused the read with
	// AccessDenied, ResourceNotFound, InvalidArgument or a KMS error); it
	// doubles with each failure in a row up to MaxFailureBackoff. The
	// shard keeps its lease meanwhile. Defaults 1 s and 5 min.
	FailureBackoff    time.Duration
	MaxFailureBackoff time.Duration
}

// StreamConfig names one stream and where to start in shards that have no
// checkpoint yet.
type StreamConfig struct {
	// Name is the stream name.
	Name string
	// InitialPosition is TrimHorizon, Latest (the default, as in Java KCL) or
	// AtTimestamp.
	InitialPosition string
	// InitialTimestamp is the start for AtTimestamp.
	InitialTimestamp time.Time
	// Identifier overrides the multi-stream identifier
	// "account:stream:creationEpoch" that prefixes lease keys; by default it
	// is derived from DescribeStreamSummary. Set it when resuming a Java KCL
	// multi-stream table whose identifier differs.
	Identifier string
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.ApplicationName == "" {
		return cfg, errors.New("consumer config: ApplicationName is required")
	}
	if len(cfg.Streams) == 0 {
		return cfg, errors.New("consumer config: Streams: at least one stream is required")
	}
	// A copy: the defaults below must not write into the caller's slice.
	cfg.Streams = append([]StreamConfig(nil), cfg.Streams...)
	names := map[string]bool{}
	for i, s := range cfg.Streams {
		if s.Name == "" {
			return cfg, fmt.Errorf("consumer config: Streams[%d].Name is required", i)
		}
		if names[s.Name] {
			return cfg, fmt.Errorf("consumer config: Streams[%d].Name: stream %q listed twice", i, s.Name)
		}
		names[s.Name] = true
		switch s.InitialPosition {
		case "":
			cfg.Streams[i].InitialPosition = Latest
		case TrimHorizon, Latest:
		case AtTimestamp:
			if s.InitialTimestamp.IsZero() {
				return cfg, fmt.Errorf("consumer config: Streams[%d].InitialTimestamp is required with AT_TIMESTAMP", i)
			}
		default:
			return cfg, fmt.Errorf("consumer config: Streams[%d].InitialPosition: %q is not TRIM_HORIZON, LATEST or AT_TIMESTAMP", i, s.InitialPosition)
		}
	}
	if len(cfg.Streams) > 1 {
		cfg.MultiStream = true
	}
	cfg.LeaseTable = leaseTableOf(cfg.ApplicationName, cfg.LeaseTable)
	if cfg.WorkerID == "" {
		host, _ := os.Hostname()
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.WorkerID = host + "-" + hex.EncodeToString(b[:])
	}
	if cfg.FailoverTime <= 0 {
		cfg.FailoverTime = DefaultFailoverTime
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = cfg.FailoverTime / 3
	}
	if cfg.RenewInterval >= cfg.FailoverTime {
		return cfg, fmt.Errorf("consumer config: RenewInterval %v must be shorter than FailoverTime %v", cfg.RenewInterval, cfg.FailoverTime)
	}
	if cfg.ShardSyncInterval <= 0 {
		cfg.ShardSyncInterval = DefaultShardSyncInterval
	}
	if cfg.MaxLeasesPerWorker < 0 {
		return cfg, fmt.Errorf("consumer config: MaxLeasesPerWorker %d is negative", cfg.MaxLeasesPerWorker)
	}
	if cfg.MaxLeasesToStealAtOnce <= 0 {
		cfg.MaxLeasesToStealAtOnce = DefaultMaxLeasesToSteal
	}
	if cfg.KCL3.HandoffTimeout <= 0 {
		// Every version honours a hand-off: a 2.x worker may hold a lease
		// a Java 3.x leader hands to another worker.
		cfg.KCL3.HandoffTimeout = DefaultHandoffTimeout
	}
	switch cfg.ClientVersion {
	case "":
		cfg.ClientVersion = ClientVersion2X
	case ClientVersion2X:
	case ClientVersion3X, ClientVersionCompatibleWith2X:
		if err := cfg.KCL3.withDefaults(&cfg); err != nil {
			return cfg, err
		}
	default:
		return cfg, fmt.Errorf("consumer config: ClientVersion %q is not %q, %q or %q", cfg.ClientVersion, ClientVersion2X, ClientVersionCompatibleWith2X, ClientVersion3X)
	}
	if cfg.FanOutConsumerName == "" {
		cfg.FanOutConsumerName = cfg.ApplicationName
	}
	if cfg.ParentPollInterval <= 0 {
		cfg.ParentPollInterval = DefaultParentPollInterval
	}
	if cfg.CompletedLeaseRetention == 0 {
		cfg.CompletedLeaseRetention = DefaultCompletedLeaseRetention
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.MaxRecords > 10000 {
		return cfg, fmt.Errorf("consumer config: MaxRecords %d exceeds the GetRecords limit of 10000", cfg.MaxRecords)
	}
	if cfg.IdleInterval <= 0 {
		cfg.IdleInterval = DefaultIdleInterval
	}
	if cfg.SubscriptionLifetime <= 0 {
		cfg.SubscriptionLifetime = DefaultSubscriptionLifetime
	}
	if cfg.FailureBackoff <= 0 {
		cfg.FailureBackoff = DefaultFailureBackoff
	}
	if cfg.MaxFailureBackoff <= 0 {
		cfg.MaxFailureBackoff = DefaultMaxFailureBackoff
	}
	if cfg.MaxFailureBackoff < cfg.FailureBackoff {
		return cfg, fmt.Errorf("consumer config: MaxFailureBackoff %v is shorter than FailureBackoff %v", cfg.MaxFailureBackoff, cfg.FailureBackoff)
	}
	return cfg, nil
}

// Option configures optional collaborators of a Consumer.
type Option func(*options)

type options struct {
	registerer prometheus.Registerer
	logger     *slog.Logger
}

// WithRegisterer registers the consumer's metrics with r. Without it the
// metrics are kept but not exported; the global registry is never used.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.registerer = r }
}

// WithLogger sets the logger; default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}
