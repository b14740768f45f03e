package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/consumer/assign"
	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/consumer/workerload"
)

// The consumer owns its defaults: the pipeline's config leaves these
// settings zero and relies on them.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	in := Config{ApplicationName: "scoring", Streams: []StreamConfig{{Name: "sensors"}}}
	got, err := in.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"LeaseTable (Java KCL: the application name)", got.LeaseTable, "scoring"},
		{"FanOutConsumerName", got.FanOutConsumerName, "scoring"},
		{"InitialPosition (Java KCL: LATEST)", got.Streams[0].InitialPosition, Latest},
		{"FailoverTime", got.FailoverTime, DefaultFailoverTime},
		{"RenewInterval (a third of the failover time)", got.RenewInterval, DefaultFailoverTime / 3},
		{"MaxRecords", got.MaxRecords, int32(DefaultMaxRecords)},
		{"IdleInterval", got.IdleInterval, DefaultIdleInterval},
		{"MultiStream with one stream", got.MultiStream, false},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if got.WorkerID == "" {
		t.Error("WorkerID left empty")
	}
	if got.ClientVersion != ClientVersion2X || got.KCL3.HandoffTimeout != DefaultHandoffTimeout {
		t.Errorf("ClientVersion %q, hand-off timeout %v: want 2x and %v (a 2.x worker honours a Java leader's hand-off too)", got.ClientVersion, got.KCL3.HandoffTimeout, DefaultHandoffTimeout)
	}
	in.ClientVersion = ClientVersion3X
	k3, err := in.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	k := k3.KCL3
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"AssignmentInterval (Java: 2 x failover)", k.AssignmentInterval, 2 * DefaultFailoverTime},
		{"BalanceEvery", k.BalanceEvery, assign.DefaultVarianceBalancingFrequency},
		{"leader lock lease", k.Leader.LeaseDuration, coordstate.DefaultLeaderLeaseDuration},
		{"leader heartbeat", k.Leader.Heartbeat, coordstate.DefaultLeaderHeartbeat},
		{"leader owner", k.Leader.Owner, k3.WorkerID},
		{"MetricsInterval", k.MetricsInterval, coordstate.DefaultMetricsReportInterval},
		{"SampleInterval", k.SampleInterval, workerload.DefaultSampleInterval},
		{"MigrationPollInterval", k.MigrationPollInterval, DefaultMigrationPollInterval},
		{"MigrationReadyTime", k.MigrationReadyTime, DefaultMigrationReadyTime},
	} {
		if c.got != c.want {
			t.Errorf("KCL3 %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if in.LeaseTable != "" || in.Streams[0].InitialPosition != "" {
		t.Error("withDefaults changed the caller's Config")
	}
}

func TestConfigRefusals(t *testing.T) {
	t.Parallel()
	base := func() Config { return Config{ApplicationName: "a", Streams: []StreamConfig{{Name: "s"}}} }
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no application", func(c *Config) { c.ApplicationName = "" }, "ApplicationName is required"},
		{"no stream", func(c *Config) { c.Streams = nil }, "at least one stream"},
		{"a stream twice", func(c *Config) { c.Streams = append(c.Streams, c.Streams[0]) }, "listed twice"},
		{"AT_TIMESTAMP without a time", func(c *Config) { c.Streams[0].InitialPosition = AtTimestamp }, "InitialTimestamp is required"},
		{"an unknown start", func(c *Config) { c.Streams[0].InitialPosition = "OLDEST" }, "is not TRIM_HORIZON"},
		{"too many records a read", func(c *Config) { c.MaxRecords = 10001 }, "GetRecords limit"},
		{"renewing no faster than failing over", func(c *Config) { c.RenewInterval = c.FailoverTime + 1; c.FailoverTime = 1 }, "must be shorter"},
		{"an unknown client version", func(c *Config) { c.ClientVersion = "4x" }, `ClientVersion "4x" is not`},
		{"a heartbeat as long as the lock", func(c *Config) {
			c.ClientVersion = ClientVersionCompatibleWith2X
			c.KCL3.Leader.Heartbeat = 2 * time.Minute
		}, "Heartbeat 2m0s must be shorter than its LeaseDuration"},
	} {
		cfg := base()
		c.mod(&cfg)
		if _, err := cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
