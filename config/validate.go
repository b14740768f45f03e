package config

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

func (c *Config) applyDefaults() {
	if c.Consumer.Application == "" {
		c.Consumer.Application = c.Pipeline
	}
	if c.Consumer.LeaseTable == "" {
		c.Consumer.LeaseTable = c.Consumer.Application
	}
	if c.Consumer.ConsumerName == "" {
		c.Consumer.ConsumerName = c.Consumer.Application
	}
	if c.Consumer.FailoverTime == 0 {
		c.Consumer.FailoverTime = Duration(10 * time.Second)
	}
	if c.Consumer.Retrieval == "" {
		c.Consumer.Retrieval = "polling"
	}
	if c.Consumer.MaxRecords == 0 {
		c.Consumer.MaxRecords = 10000
	}
	if c.Consumer.IdleInterval == 0 {
		c.Consumer.IdleInterval = Duration(200 * time.Millisecond)
	}
	if c.Consumer.StartPosition == "" {
		c.Consumer.StartPosition = "TRIM_HORIZON"
	}
	for _, s := range c.Schemas {
		if s != nil && s.TimeFormat == "" {
			s.TimeFormat = "rfc3339"
		}
	}
	for i := range c.Windows {
		w := &c.Windows[i]
		if w.IdleTimeout == 0 {
			w.IdleTimeout = max(w.Size, w.Gap)
		}
		if w.Late == "" {
			w.Late = "dead_letter"
		}
		if w.MaxKeys == 0 {
			w.MaxKeys = 100000
		}
	}
	for _, m := range c.Models {
		if m != nil && m.Format == "" {
			m.Format = "xgboost"
		}
	}
	for i := range c.Scorers {
		if e := c.Scorers[i].Endpoint; e != nil {
			if e.Timeout == 0 {
				e.Timeout = Duration(2 * time.Second)
			}
			if e.MaxRowsPerRequest == 0 {
				e.MaxRowsPerRequest = 500
			}
			if e.Concurrency == 0 {
				e.Concurrency = 4
			}
		}
	}
	if s := c.Sinks.S3; s != nil {
		if s.RollMiB == 0 {
			s.RollMiB = 128
		}
		if s.RollAge == 0 {
			s.RollAge = Duration(60 * time.Second)
		}
		if s.ZstdLevel == 0 {
			s.ZstdLevel = 1
		}
		if s.FloatEncoding == "" {
			s.FloatEncoding = "byte_stream_split"
		}
	}
	if cw := c.Sinks.CloudWatch; cw != nil {
		if cw.Namespace == "" {
			cw.Namespace = "Streamscore"
		}
		if cw.FlushInterval == 0 {
			cw.FlushInterval = Duration(60 * time.Second)
		}
	}
	if ft := c.Sinks.FeatureTable; ft != nil && ft.TTL == 0 {
		ft.TTL = Duration(7 * 24 * time.Hour)
	}
	if dl := c.Sinks.DeadLetter; dl != nil && dl.LargeRecords == "" {
		dl.LargeRecords = "truncate"
		if dl.Bucket != "" {
			dl.LargeRecords = "bucket"
		}
	}
	for i := range c.Alerts.Rules {
		r := &c.Alerts.Rules[i]
		if r.FireAfter == 0 {
			r.FireAfter = 1
		}
		if r.ClearAfter == 0 {
			r.ClearAfter = 1
		}
		if r.Severity == "" {
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

// problems collects validation errors by key path; Parse adds file and line.
type problems Errors

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) oneOf(path, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		p.add(path, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
}

// ref checks that name is a key of defined; what says what kind of thing it is.
func (p *problems) ref(path, what, name string, defined []string) {
	if name == "" {
		p.add(path, "missing: name a %s", what)
		return
	}
	if !slices.Contains(defined, name) {
		if len(defined) == 0 {
			p.add(path, "undefined %s %q: the file defines no %ss", what, name, what)
		} else {
			p.add(path, "undefined %s %q (defined: %s)", what, name, strings.Join(defined, ", "))
		}
	}
}

func (c *Config) validate() Errors {
	var p problems
	if c.Pipeline == "" {
		p.add("pipeline", "missing: name the pipeline")
	}
	c.validateConsumer(&p)

	schemas := sortedKeys(c.Schemas)
	streams := make([]string, 0, len(c.Streams))
	if len(c.Streams) == 0 {
		p.add("streams", "missing: list at least one stream")
	}
	for i, s := range c.Streams {
		path := fmt.Sprintf("streams[%d]", i)
		if s.Name == "" {
			p.add(path+".name", "missing")
		} else if slices.Contains(streams, s.Name) {
			p.add(path+".name", "stream %q is listed twice", s.Name)
		}
		streams = append(streams, s.Name)
		p.ref(path+".schema", "schema", s.Schema, schemas)
		if s.Shards < 0 {
			p.add(path+".shards", "must not be negative")
		}
	}
	for _, name := range schemas {
		c.validateSchema(&p, "schemas."+name, c.Schemas[name])
	}

	windows := make([]string, 0, len(c.Windows))
	for i, w := range c.Windows {
		path := fmt.Sprintf("windows[%d]", i)
		if w.Name == "" {
			p.add(path+".name", "missing")
		} else if slices.Contains(windows, w.Name) {
			p.add(path+".name", "window %q is defined twice", w.Name)
		}
		windows = append(windows, w.Name)
		p.ref(path+".stream", "stream", w.Stream, streams)
		var schema *Schema
		for _, s := range c.Streams {
			if s.Name == w.Stream {
				schema = c.Schemas[s.Schema]
			}
		}
		c.validateWindow(&p, path, w, schema)
	}

	models := sortedKeys(c.Models)
	for _, name := range models {
		m := c.Models[name]
		path := "models." + name
		if m == nil {
			p.add(path, "empty model")
			continue
		}
		p.oneOf(path+".format", m.Format, "xgboost", "linear")
		if m.Path == "" {
			p.add(path+".path", "missing: a model file or s3:// URI")
		}
		if d := m.SHA256; d != "" {
			if _, err := hex.DecodeString(d); err != nil || len(d) != 64 {
				p.add(path+".sha256", "%q is not a SHA-256 digest: want 64 hex digits (sha256sum of the model file)", d)
			}
		}
		if m.VersionID != "" && !strings.HasPrefix(m.Path, "s3://") {
			p.add(path+".version_id", "only an s3:// path has object versions")
		}
		l := m.Limits
		for _, f := range []struct {
			name string
			v    int64
		}{{"max_file_bytes", l.MaxFileBytes}, {"max_trees", int64(l.MaxTrees)}, {"max_nodes", int64(l.MaxNodes)},
			{"max_depth", int64(l.MaxDepth)}, {"max_heap_bytes", l.MaxHeapBytes}, {"max_tar_members", int64(l.MaxTarMembers)},
			{"max_tar_bytes", l.MaxTarBytes}, {"max_tar_member_bytes", l.MaxTarMemberBytes}} {
			if f.v < 0 {
				p.add(path+".limits."+f.name, "must not be negative (0 takes the default)")
			}
		}
		if l.MaxDepth > 64 {
			p.add(path+".limits.max_depth", "%d: at most 64", l.MaxDepth)
		}
	}

	scorers := make([]string, 0, len(c.Scorers))
	for i, s := range c.Scorers {
		path := fmt.Sprintf("scorers[%d]", i)
		if s.Name == "" {
			p.add(path+".name", "missing")
		} else if slices.Contains(scorers, s.Name) {
			p.add(path+".name", "scorer %q is defined twice", s.Name)
		}
		scorers = append(scorers, s.Name)
		p.ref(path+".window", "window", s.Window, windows)
		switch {
		case s.Endpoint == nil:
			p.ref(path+".model", "model", s.Model, models)
		case s.Model != "":
			p.ref(path+".model", "model", s.Model, models)
		}
		if e := s.Endpoint; e != nil {
			if e.Name == "" {
				p.add(path+".endpoint.name", "missing: the SageMaker endpoint name")
			}
			if e.Fallback != "" {
				p.ref(path+".endpoint.fallback", "model", e.Fallback, models)
			}
			if e.MaxRowsPerRequest < 0 || e.Concurrency < 0 {
				p.add(path+".endpoint", "max_rows_per_request and concurrency must be positive")
			}
		}
		if s.Challenger != "" {
			p.ref(path+".challenger", "model", s.Challenger, models)
		}
		if s.CanaryPercent < 0 || s.CanaryPercent > 100 {
			p.add(path+".canary_percent", "must be between 0 and 100, got %v", s.CanaryPercent)
		} else if s.CanaryPercent > 0 && s.Challenger == "" {
			p.add(path+".canary_percent", "a canary needs a challenger model")
		}
	}

	if s := c.Sinks.S3; s != nil {
		if s.Bucket == "" {
			p.add("sinks.s3.bucket", "missing")
		}
		if s.ZstdLevel < 1 || s.ZstdLevel > 22 {
			p.add("sinks.s3.zstd_level", "%d is not a zstd level (1 to 22)", s.ZstdLevel)
		}
		p.oneOf("sinks.s3.float_encoding", s.FloatEncoding, "byte_stream_split", "plain")
	}
	if s := c.Sinks.FeatureTable; s != nil && s.Table == "" {
		p.add("sinks.feature_table.table", "missing")
	}
	if s := c.Sinks.DeadLetter; s != nil {
		if s.Queue == "" {
			p.add("sinks.dead_letter.queue", "missing")
		}
		p.oneOf("sinks.dead_letter.large_records", s.LargeRecords, "bucket", "truncate")
		switch {
		case s.LargeRecords == "bucket" && s.Bucket == "":
			p.add("sinks.dead_letter.large_records", "bucket needs sinks.dead_letter.bucket: Kinesis records up to 1 MiB exceed an SQS message; set a bucket or large_records: truncate")
		case s.LargeRecords == "truncate" && s.Bucket != "":
			p.add("sinks.dead_letter.large_records", "truncate with a bucket set: large records would be cut although the bucket could hold them whole; drop large_records or set it to bucket")
		}
	}
	if len(c.Alerts.Rules) > 0 && c.Alerts.Topic == "" {
		p.add("alerts.topic", "missing: alert rules need a topic")
	}
	for i, r := range c.Alerts.Rules {
		path := fmt.Sprintf("alerts.rules[%d]", i)
		if r.Name == "" {
			p.add(path+".name", "missing")
		}
		p.ref(path+".scorer", "scorer", r.Scorer, scorers)
		p.oneOf(path+".severity", r.Severity, "info", "warning", "critical")
		if r.FireAfter < 0 || r.ClearAfter < 0 {
			p.add(path, "fire_after and clear_after must be positive")
		}
	}
	p.oneOf("ops.log_format", c.Ops.LogFormat, "json", "text")
	p.oneOf("ops.log_level", c.Ops.LogLevel, "debug", "info", "warn", "error")
	return Errors(p)
}

func (c *Config) validateConsumer(p *problems) {
	cc := c.Consumer
	p.oneOf("consumer.retrieval", cc.Retrieval, "polling", "fanout")
	p.oneOf("consumer.start_position", cc.StartPosition, "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
	if cc.StartPosition == "AT_TIMESTAMP" && cc.StartTimestamp.IsZero() {
		p.add("consumer.start_timestamp", "missing: AT_TIMESTAMP needs a start_timestamp")
	}
	if cc.MaxRecords < 1 || cc.MaxRecords > 10000 {
		p.add("consumer.max_records", "must be between 1 and 10000 (the GetRecords limit), got %d", cc.MaxRecords)
	}
	if cc.MaxLeasesPerWorker < 0 {
		p.add("consumer.max_leases_per_worker", "must not be negative")
	}
}

func (c *Config) validateSchema(p *problems, path string, s *Schema) {
	if s == nil {
		p.add(path, "empty schema")
		return
	}
	if s.Entity == "" {
		p.add(path+".entity", "missing: the entity key field (e.g. machine_id)")
	}
	if s.Time == "" {
		p.add(path+".time", "missing: the event-time field (e.g. ts)")
	}
	p.oneOf(path+".time_format", s.TimeFormat, "rfc3339", "epoch_s", "epoch_ms")
	seen := map[string]bool{s.Entity: true, s.Time: true}
	for i, f := range s.Fields {
		fp := fmt.Sprintf("%s.fields[%d]", path, i)
		if f.Name == "" {
			p.add(fp+".name", "missing")
		} else if seen[f.Name] {
			p.add(fp+".name", "field %q is declared twice (or is the entity or time field)", f.Name)
		}
		seen[f.Name] = true
		p.oneOf(fp+".type", f.Type, "string", "float64", "int64", "bool", "timestamp")
	}
}

func (c *Config) validateWindow(p *problems, path string, w Window, schema *Schema) {
	p.oneOf(path+".kind", w.Kind, "tumbling", "hopping", "session")
	switch w.Kind {
	case "tumbling":
		if w.Size <= 0 {
			p.add(path+".size", "missing: a tumbling window needs a size")
		}
	case "hopping":
		if w.Size <= 0 {
			p.add(path+".size", "missing: a hopping window needs a size")
		}
		if w.Slide <= 0 {
			p.add(path+".slide", "missing: a hopping window needs a slide")
		} else if w.Size > 0 && (w.Slide > w.Size || w.Size%w.Slide != 0) {
			p.add(path+".slide", "slide %s must divide size %s", w.Slide.D(), w.Size.D())
		}
	case "session":
		if w.Gap <= 0 {
			p.add(path+".gap", "missing: a session window needs a gap")
		}
	}
	p.oneOf(path+".late", w.Late, "dead_letter", "ignore")
	if w.MaxKeys < 0 {
		p.add(path+".max_keys", "must not be negative")
	}
	if w.MaxStateBytes < 0 {
		p.add(path+".max_state_bytes", "must not be negative")
	}
	if len(w.Features) == 0 {
		p.add(path+".features", "missing: list at least one feature")
	}
	types := map[string]string{}
	if schema != nil {
		types[schema.Entity] = "string"
		types[schema.Time] = "timestamp"
		for _, f := range schema.Fields {
			types[f.Name] = f.Type
		}
	}
	names := map[string]bool{}
	for i, f := range w.Features {
		fp := fmt.Sprintf("%s.features[%d]", path, i)
		if f.Name == "" {
			p.add(fp+".name", "missing")
		} else if names[f.Name] {
			p.add(fp+".name", "feature %q is defined twice in this window", f.Name)
		}
		names[f.Name] = true
		if !slices.Contains(Aggregates(), f.Agg) {
			p.add(fp+".agg", "unknown aggregate %q (known: %s)", f.Agg, strings.Join(Aggregates(), ", "))
			continue
		}
		if f.Agg == "count" || f.Agg == "seconds_since_last" {
			continue // need no field
		}
		if f.Field == "" {
			p.add(fp+".field", "missing: %s needs a field", f.Agg)
			continue
		}
		typ, ok := types[f.Field]
		if schema != nil && !ok {
			p.add(fp+".field", "undefined field %q: the stream's schema does not declare it", f.Field)
			continue
		}
		numeric := typ == "float64" || typ == "int64"
		switch f.Agg {
		case "sum", "mean", "min", "max", "stddev", "variance", "delta", "rate", "quantile":
			if schema != nil && !numeric {
				p.add(fp+".field", "%s needs a numeric field; %q is %s", f.Agg, f.Field, typ)
			}
		case "count_if":
			if f.Equals == "" {
				p.add(fp+".equals", "missing: count_if needs the value to count")
			}
		}
		if f.Agg == "quantile" && (f.Quantile <= 0 || f.Quantile >= 1) {
			p.add(fp+".quantile", "must be between 0 and 1 (exclusive), got %v", f.Quantile)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
