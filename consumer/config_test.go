package consumer

import (
	"strings"
	"testing"
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
	} {
		cfg := base()
		c.mod(&cfg)
		if _, err := cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
