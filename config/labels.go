package config

import (
	"fmt"
	"slices"
	"strings"
)

// Labels are the ground truth the quality monitor judges predictions with
// (docs/quality.md). They are read from a Kinesis stream listed under
// streams, decoded with its schema (entity and event time), and written to
// S3 as Model Monitor's ground-truth JSON Lines before they are
// checkpointed; files other systems put under the same prefix count too.
type Labels struct {
	// Stream names the stream (a streams entry no window reads) whose
	// records are labels.
	Stream string `yaml:"stream"`
	// Label is the schema field holding the label: a bool, a number, or a
	// string holding one ("1", "true").
	Label string `yaml:"label"`
	// InferenceID is the schema field (a string) holding the result_id of
	// the prediction a label judges, as alerts and the feature table show
	// it (32 hex digits). Empty: labels judge predictions by entity and
	// each quality monitor's horizon.
	InferenceID string `yaml:"inference_id"`
	// Prefix is where, in sinks.s3.bucket, the ground truth is written and
	// read. Empty takes "groundtruth/<pipeline>/".
	Prefix string `yaml:"prefix"`
	// Delay is how long after a prediction (after its horizon, when joined
	// by entity) its label may still arrive. A period is judged once it
	// has passed. Zero takes the pipeline's default, 10m.
	Delay Duration `yaml:"delay"`
}

// QualityMonitor judges one scorer's predictions, champion and challenger,
// against the labels, period by period.
type QualityMonitor struct {
	Scorer string `yaml:"scorer"`
	// Problem is binary (the default: the score is the positive class's
	// probability) or regression.
	Problem string `yaml:"problem"`
	// Threshold is the score at or above which a binary prediction is
	// positive. Zero takes 0.5.
	Threshold float64 `yaml:"threshold"`
	// Horizon joins labels without an inference id by entity: a label at
	// time T judges the entity's predictions whose window ended in
	// [T - horizon, T); a prediction no positive label follows within the
	// horizon is a negative. Binary only.
	Horizon Duration `yaml:"horizon"`
	// Constraints is a directory or s3:// prefix holding a model-quality
	// constraints.json (`streamscore monitor quality --baseline` or Model
	// Monitor's suggest job writes one). Empty: statistics only, no
	// violations.
	Constraints string `yaml:"constraints"`
}

// validateQuality checks the labels and monitor.quality sections and
// returns the scorers under quality monitoring, which quality rules refer
// to.
func (c *Config) validateQuality(p *problems, streams, scorers []string) []string {
	l := c.Labels
	if l != nil {
		p.ref("labels.stream", "stream", l.Stream, streams)
		for _, w := range c.Windows {
			if w.Stream != "" && w.Stream == l.Stream {
				p.add("labels.stream", "stream %q is read by window %q: a labels stream carries labels only", l.Stream, w.Name)
				break
			}
		}
		if sc := c.labelsSchema(); sc != nil {
			c.labelField(p, "labels.label", l.Label, sc, "bool", "int64", "float64", "string")
			if l.InferenceID != "" {
				c.labelField(p, "labels.inference_id", l.InferenceID, sc, "string")
			}
		}
		if l.Delay < 0 {
			p.add("labels.delay", "must be positive (0 takes the default)")
		}
		if c.Sinks.S3 == nil {
			p.add("labels", "the ground truth is written to sinks.s3.bucket: configure sinks.s3")
		}
	}
	var judged []string
	for i, q := range c.Monitor.Quality {
		path := fmt.Sprintf("monitor.quality[%d]", i)
		p.ref(path+".scorer", "scorer", q.Scorer, scorers)
		p.name(path+".scorer", "scorer", q.Scorer, &judged, false, "judged")
		if q.Problem != "" {
			p.oneOf(path+".problem", q.Problem, "binary", "regression")
		}
		if q.Threshold < 0 || q.Threshold > 1 {
			p.add(path+".threshold", "%v is not a probability: want (0, 1], 0 takes 0.5", q.Threshold)
		}
		if q.Horizon < 0 {
			p.add(path+".horizon", "must be positive")
		}
		switch {
		case l == nil:
			p.add(path, "labels: missing: quality is judged against the labels section's ground truth")
		case l.InferenceID == "" && q.Horizon == 0:
			p.add(path+".horizon", "missing: labels carry no inference_id, so they judge predictions by entity within a horizon")
		case q.Horizon > 0 && q.Problem == "regression":
			p.add(path+".horizon", "a horizon join makes binary labels (a failure or none): it cannot judge a regression")
		}
		if strings.HasPrefix(q.Constraints, "s3://") && len(q.Constraints) <= len("s3://") {
			p.add(path+".constraints", "%q names no bucket", q.Constraints)
		}
	}
	return judged
}

// labelsSchema is the schema of the labels stream, nil when it has none.
func (c *Config) labelsSchema() *Schema {
	for _, s := range c.Streams {
		if s.Name == c.Labels.Stream {
			return c.Schemas[s.Schema]
		}
	}
	return nil
}

// labelField checks that field is a field of the labels schema, of one of
// the types given.
func (c *Config) labelField(p *problems, path, field string, sc *Schema, types ...string) {
	if field == "" {
		p.add(path, "missing: name the labels schema's field")
		return
	}
	i := slices.IndexFunc(sc.Fields, func(f Field) bool { return f.Name == field })
	if i < 0 {
		var names []string
		for _, f := range sc.Fields {
			names = append(names, f.Name)
		}
		p.add(path, "%q is not a field of the labels stream's schema (fields: %s)", field, strings.Join(names, ", "))
		return
	}
	if t := sc.Fields[i].Type; !slices.Contains(types, t) {
		p.add(path, "field %q is a %s: want %s", field, t, strings.Join(types, " or "))
	}
}
