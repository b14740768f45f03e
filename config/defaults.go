package config

// Defaults the configuration file has of its own. A setting whose zero
// value the owning package already turns into its default (the consumer's
// lease table, failover time, max records and idle interval; the sinks'
// roll size and age, zstd level, float encoding, flush interval, TTL,
// large-record handling and alert hysteresis; the scorer's endpoint
// timeout, concurrency and rows per request; the CloudWatch namespace;
// windowing's max_keys and max_state_bytes) is
// left zero here, so each default has one home: the package's. The
// window, schema and stream defaults windowing does not share are applied
// where the file is converted to windowing's types (spec.go).

import "time"

// applyDefaults fills what only the configuration file decides.
func (c *Config) applyDefaults() {
	// The pipeline names the application, and through it (in the
	// consumer) the lease table and fan-out consumer.
	if c.Consumer.Application == "" {
		c.Consumer.Application = c.Pipeline
	}
	// A pipeline starts at the oldest record: the consumer's own default
	// is LATEST, as in Java KCL.
	if c.Consumer.StartPosition == "" {
		c.Consumer.StartPosition = "TRIM_HORIZON"
	}
	for _, m := range c.Models {
		if m != nil && m.Format == "" {
			m.Format = "xgboost"
		}
	}
	for i := range c.Alerts.Rules {
		if r := &c.Alerts.Rules[i]; r.Severity == "" {
			r.Severity = "warning"
		}
	}
	if c.Ops.Listen == "" {
		c.Ops.Listen = "127.0.0.1:9464"
	}
	if c.Ops.LogFormat == "" {
		c.Ops.LogFormat = "json"
	}
	if c.Ops.LogLevel == "" {
		c.Ops.LogLevel = "info"
	}
	if c.Ops.StatusInterval == 0 {
		c.Ops.StatusInterval = Duration(10 * time.Second)
	}
}
