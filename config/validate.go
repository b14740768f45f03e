package config

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

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

// name checks that an item's name is unique among those seen so far (and
// present, when required), and records it.
func (p *problems) name(path, what, name string, seen *[]string, required bool, twice string) {
	switch {
	case name == "" && required:
		p.add(path, "missing")
	case name != "" && slices.Contains(*seen, name):
		p.add(path, "%s %q is %s twice", what, name, twice)
	}
	*seen = append(*seen, name)
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
		p.name(path+".name", "stream", s.Name, &streams, true, "listed")
		p.ref(path+".schema", "schema", s.Schema, schemas)
		if s.Shards < 0 {
			p.add(path+".shards", "must not be negative")
		}
	}
	for _, name := range schemas {
		if c.Schemas[name] == nil {
			p.add("schemas."+name, "empty schema")
		}
	}

	windows := make([]string, 0, len(c.Windows))
	for i, w := range c.Windows {
		path := fmt.Sprintf("windows[%d]", i)
		// A window's missing name is windowing's to report.
		p.name(path+".name", "window", w.Name, &windows, false, "defined")
		p.ref(path+".stream", "stream", w.Stream, streams)
	}
	// What a schema or window means is windowing's to judge.
	c.validateSpecs(&p)

	models := sortedKeys(c.Models)
	for _, name := range models {
		m := c.Models[name]
		path := "models." + name
		if m == nil {
			p.add(path, "empty model")
			continue
		}
		p.oneOf(path+".format", m.Format, "xgboost", "lightgbm", "linear")
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
			{"max_tar_bytes", l.MaxTarBytes}, {"max_tar_member_bytes", l.MaxTarMemberBytes}, {"max_features", int64(l.MaxFeatures)}} {
			if f.v < 0 {
				p.add(path+".limits."+f.name, "must not be negative (0 takes the default)")
			}
		}
		if l.MaxDepth > 64 {
			p.add(path+".limits.max_depth", "%d: at most 64", l.MaxDepth)
		}
		if l.MaxFeatures > 1<<20 {
			p.add(path+".limits.max_features", "%d: at most 1048576", l.MaxFeatures)
		}
	}

	scorers := make([]string, 0, len(c.Scorers))
	for i, s := range c.Scorers {
		path := fmt.Sprintf("scorers[%d]", i)
		p.name(path+".name", "scorer", s.Name, &scorers, true, "defined")
		p.ref(path+".window", "window", s.Window, windows)
		switch {
		case s.Endpoint == nil:
			p.ref(path+".model", "model", s.Model, models)
		case s.Model != "":
			p.ref(path+".model", "model", s.Model, models)
		}
		if e := s.Endpoint; e != nil {
			c.validateEndpoint(&p, path+".endpoint", e, s.Window, models)
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
		if s.ZstdLevel < 0 || s.ZstdLevel > 22 {
			p.add("sinks.s3.zstd_level", "%d is not a zstd level (1 to 22)", s.ZstdLevel)
		}
		if s.FloatEncoding != "" {
			p.oneOf("sinks.s3.float_encoding", s.FloatEncoding, "byte_stream_split", "plain")
		}
	}
	if s := c.Sinks.FeatureTable; s != nil && s.Table == "" {
		p.add("sinks.feature_table.table", "missing")
	}
	if s := c.Sinks.DeadLetter; s != nil {
		if s.Queue == "" {
			p.add("sinks.dead_letter.queue", "missing")
		}
		if s.LargeRecords != "" {
			p.oneOf("sinks.dead_letter.large_records", s.LargeRecords, "bucket", "truncate")
		}
		switch {
		case s.LargeRecords == "bucket" && s.Bucket == "":
			p.add("sinks.dead_letter.large_records", "bucket needs sinks.dead_letter.bucket: Kinesis records up to 1 MiB exceed an SQS message; set a bucket or large_records: truncate")
		case s.LargeRecords == "truncate" && s.Bucket != "":
			p.add("sinks.dead_letter.large_records", "truncate with a bucket set: large records would be cut although the bucket could hold them whole; drop large_records or set it to bucket")
		}
	}
	c.validatePromotions(&p)
	monitored := c.validateMonitor(&p, windows, scorers)
	judged := c.validateQuality(&p, streams, scorers)
	c.validateRetrain(&p)
	c.validateReview(&p)
	if len(c.Alerts.Rules) > 0 && c.Alerts.Topic == "" {
		p.add("alerts.topic", "missing: alert rules need a topic")
	}
	for i, r := range c.Alerts.Rules {
		path := fmt.Sprintf("alerts.rules[%d]", i)
		if r.Name == "" {
			p.add(path+".name", "missing")
		}
		switch kinds := btoi(r.Scorer != "") + btoi(r.Drift != "") + btoi(r.Quality != ""); {
		case kinds > 1:
			p.add(path, "a rule judges one thing: a scorer's scores (scorer), a window's drift (drift) or a scorer's model quality (quality)")
		case r.Drift != "":
			p.ref(path+".drift", "monitored window", r.Drift, monitored)
		case r.Quality != "":
			p.ref(path+".quality", "quality-monitored scorer", r.Quality, judged)
		default:
			p.ref(path+".scorer", "scorer", r.Scorer, scorers)
		}
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
	if cc.Retrieval != "" {
		p.oneOf("consumer.retrieval", cc.Retrieval, "polling", "fanout")
	}
	p.oneOf("consumer.start_position", cc.StartPosition, "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
	if cc.StartPosition == "AT_TIMESTAMP" && cc.StartTimestamp.IsZero() {
		p.add("consumer.start_timestamp", "missing: AT_TIMESTAMP needs a start_timestamp")
	}
	if cc.MaxRecords < 0 || cc.MaxRecords > 10000 {
		p.add("consumer.max_records", "must be between 1 and 10000 (the GetRecords limit; 0 takes the consumer's default), got %d", cc.MaxRecords)
	}
	if cc.MaxLeasesPerWorker < 0 {
		p.add("consumer.max_leases_per_worker", "must not be negative")
	}
	if cc.ClientVersion != "" {
		p.oneOf("consumer.client_version", cc.ClientVersion, "2x", "2x-compatible", "3x")
	}
	if cc.ClientVersion == "" || cc.ClientVersion == "2x" {
		for _, k := range []struct {
			key string
			set bool
		}{{"lease_assignment", cc.LeaseAssignment != ""}, {"report_cpu", cc.ReportCPU != nil}} {
			if k.set {
				p.add("consumer."+k.key, "applies to client_version 3x or 2x-compatible only")
			}
		}
	}
	if cc.LeaseAssignment != "" {
		p.oneOf("consumer.lease_assignment", cc.LeaseAssignment, "worker_utilization_aware", "lease_count_based")
	}
	if cc.HandoffTimeout < 0 {
		p.add("consumer.handoff_timeout", "must not be negative")
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

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validateEndpoint checks a scorer's SageMaker endpoint with the scorer's
// own rules (remotespec.ParseContentType, ParseScorePath, CheckTargetModel...),
// each error at its key. window is the scorer's window, whose entity and
// features a target_model_from column must be one of.
func (c *Config) validateEndpoint(p *problems, path string, e *Endpoint, window string, models []string) {
	if e.Name == "" {
		p.add(path+".name", "missing: the SageMaker endpoint name")
	}
	if e.Fallback != "" {
		p.ref(path+".fallback", "model", e.Fallback, models)
	}
	if e.MaxRowsPerRequest < 0 || e.Concurrency < 0 {
		p.add(path, "max_rows_per_request and concurrency must be positive")
	}
	for _, f := range []struct {
		key string
		neg bool
	}{{"max_targets", e.MaxTargets < 0}, {"max_payload_bytes", e.MaxPayloadBytes < 0}} {
		if f.neg {
			p.add(path+"."+f.key, "must not be negative (0 takes the default)")
		}
	}
	limit, kind := remotespec.MaxPayloadBytes, "real-time"
	if e.Serverless {
		limit, kind = remotespec.ServerlessMaxPayloadBytes, "serverless"
	}
	if e.MaxPayloadBytes > limit {
		p.add(path+".max_payload_bytes", "%d is over SageMaker's %d byte limit for a %s endpoint", e.MaxPayloadBytes, limit, kind)
	}
	ct, err := remotespec.ParseContentType(e.ContentType)
	if err != nil {
		p.add(path+".content_type", "%v", err)
	}
	accept := ct
	if e.Accept != "" {
		if accept, err = remotespec.ParseContentType(e.Accept); err != nil {
			p.add(path+".accept", "%v", err)
		}
	}
	switch e.Instance {
	case "":
	case remotespec.InstanceArray, remotespec.InstanceFeatures, remotespec.InstanceNamed:
		if ct == remotespec.ContentCSV {
			p.add(path+".json_instance", "applies to application/json and application/jsonlines requests only (content_type is text/csv)")
		}
	default:
		p.oneOf(path+".json_instance", e.Instance, remotespec.InstanceArray, remotespec.InstanceFeatures, remotespec.InstanceNamed)
	}
	if accept != "" && e.ScorePath != "" {
		if _, err := remotespec.ParseScorePath(e.ScorePath, accept); err != nil {
			p.add(path+".score_path", "%v", err)
		}
	}
	if e.InferenceComponent != "" {
		if err := remotespec.CheckInferenceComponent(e.InferenceComponent); err != nil {
			p.add(path+".inference_component", "%v", err)
		}
	}
	if e.TargetContainerHostname != "" {
		if err := remotespec.CheckTargetContainerHostname(e.TargetContainerHostname); err != nil {
			p.add(path+".target_container_hostname", "%v", err)
		}
	}
	c.validateTargets(p, path, e, window)
}

// validateTargets checks a multi-model endpoint's target model settings.
func (c *Config) validateTargets(p *problems, path string, e *Endpoint, window string) {
	if e.TargetModel != "" {
		if err := remotespec.CheckTargetModel(e.TargetModel); err != nil {
			p.add(path+".target_model", "%v", err)
		}
	}
	from := e.TargetModelFrom
	if from == "" {
		for _, f := range []struct {
			key string
			set bool
		}{{"target_models", len(e.TargetModels) > 0}, {"target_model_template", e.TargetModelTemplate != ""},
			{"target_model_delimiter", e.TargetModelDelimiter != ""}, {"target_model_segment", e.TargetModelSegment != 0}} {
			if f.set {
				p.add(path+"."+f.key, "needs target_model_from, the column whose value picks each row's model")
			}
		}
		return
	}
	if e.TargetModel != "" {
		p.add(path+".target_model_from", "give target_model (one model for every row) or target_model_from (a model per row), not both")
	}
	if w, err := c.Window(window); err == nil {
		cols := []string{}
		if sc, err := c.StreamSchema(w.Stream); err == nil {
			cols = append(cols, sc.Entity)
		}
		for _, f := range w.Features {
			cols = append(cols, f.Name)
		}
		if !slices.Contains(cols, from) {
			p.add(path+".target_model_from", "%q is not a column of window %s's batches (its entity or a feature: %s)", from, window, strings.Join(cols, ", "))
		}
	}
	if len(e.TargetModels) == 0 && e.TargetModelTemplate == "" {
		p.add(path+".target_model_from", "give target_models, target_model_template or both: how a value names its model")
	}
	if e.TargetModelSegment < 0 {
		p.add(path+".target_model_segment", "must not be negative (segments count from 0)")
	} else if e.TargetModelSegment > 0 && e.TargetModelDelimiter == "" {
		p.add(path+".target_model_segment", "a segment needs target_model_delimiter, what the value is split at")
	}
	for _, k := range sortedKeys(e.TargetModels) {
		if err := remotespec.CheckTargetModel(e.TargetModels[k]); err != nil {
			p.add(path+".target_models."+k, "%v", err)
		}
	}
	if e.TargetModelTemplate != "" {
		if err := remotespec.CheckTargetModelTemplate(e.TargetModelTemplate, from); err != nil {
			p.add(path+".target_model_template", "%v", err)
		}
	}
}
