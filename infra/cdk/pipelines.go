package main

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pipeline is what the stack needs to know of one pipeline configuration:
// the parts that name AWS resources. Everything else in the file (schemas,
// windows, rules) passes through to the worker untouched; strict validation
// is streamscore's own (`streamscore config validate`), run on the rendered
// files by the tests.
type Pipeline struct {
	File string
	Name string
	// Application names the KCL application: the lease table's name when
	// the worker creates it itself.
	Application string
	// FanOutConsumer is the enhanced fan-out consumer's name
	// (consumer.consumer_name, default the application).
	FanOutConsumer string
	FanOut         bool
	Streams        []PipelineStream
	// Models maps model name to its path as written in the file.
	Models map[string]string
	// Scorers are the scorers whose results go to S3, with their columns.
	Scorers []ResultTable
	// Namespace is the CloudWatch namespace, empty without PutMetricData.
	Namespace string
	// Endpoints are SageMaker endpoints the scorers call.
	Endpoints []string
	HasS3     bool
	// S3Prefix is the results prefix as written in the file.
	S3Prefix string
	// Windows are the pipeline's windows with how long each holds records.
	Windows []PipelineWindow
	// Monitor is the drift monitor section, nil without one.
	Monitor *PipelineMonitor
	// Labels is the ground truth's stream, nil without a labels section.
	Labels *PipelineLabels
	// Quality are the scorers monitor.quality judges against the labels;
	// QualityConstraints each one's constraints as written ("" for none).
	Quality            []string
	QualityConstraints map[string]string
	// Promotions are the scorers with a promotion policy.
	Promotions []ScorerPromotion
	// Retrain: monitor.retrain publishes the flywheel's events.
	Retrain bool

	doc *yaml.Node
}

// PipelineStream is a Kinesis stream a pipeline consumes.
type PipelineStream struct {
	Name   string
	Shards int
}

// PipelineWindow is one window of a pipeline: the feature set it writes to
// the feature table and how long it holds a record of its stream.
type PipelineWindow struct {
	Name, Stream string
	// Hold is how long after a record's event time the window may still
	// need it: size (a session's gap) + out-of-orderness + allowed
	// lateness. The checkpoint stays behind it that long.
	Hold time.Duration
}

// ResultTable is the Parquet layout one scorer writes (docs/sinks.md).
type ResultTable struct {
	Scorer     string
	Stream     string
	Features   []string
	Challenger bool
}

// pipelineFile is the subset of the configuration read here; unknown keys
// are ignored on purpose (see Pipeline).
type pipelineFile struct {
	Pipeline string `yaml:"pipeline"`
	Consumer struct {
		Application  string `yaml:"application"`
		Retrieval    string `yaml:"retrieval"`
		ConsumerName string `yaml:"consumer_name"`
	} `yaml:"consumer"`
	Streams []struct {
		Name   string `yaml:"name"`
		Shards int    `yaml:"shards"`
	} `yaml:"streams"`
	Windows []struct {
		Name            string `yaml:"name"`
		Stream          string `yaml:"stream"`
		Kind            string `yaml:"kind"`
		Size            string `yaml:"size"`
		Gap             string `yaml:"gap"`
		OutOfOrderness  string `yaml:"out_of_orderness"`
		AllowedLateness string `yaml:"allowed_lateness"`
		Features        []struct {
			Name string `yaml:"name"`
		} `yaml:"features"`
	} `yaml:"windows"`
	Models map[string]struct {
		Path string `yaml:"path"`
	} `yaml:"models"`
	Scorers []struct {
		Name       string `yaml:"name"`
		Window     string `yaml:"window"`
		Challenger string `yaml:"challenger"`
		Endpoint   *struct {
			Name string `yaml:"name"`
		} `yaml:"endpoint"`
		Promotion *struct {
			Table string `yaml:"table"`
			Auto  bool   `yaml:"auto"`
		} `yaml:"promotion"`
	} `yaml:"scorers"`
	Monitor *struct {
		Prefix  string `yaml:"prefix"`
		Windows []struct {
			Window   string `yaml:"window"`
			Baseline string `yaml:"baseline"`
		} `yaml:"windows"`
		Quality []struct {
			Scorer      string `yaml:"scorer"`
			Constraints string `yaml:"constraints"`
		} `yaml:"quality"`
		Retrain *struct {
			EventBus string `yaml:"event_bus"`
		} `yaml:"retrain"`
	} `yaml:"monitor"`
	Labels *struct {
		Stream string `yaml:"stream"`
	} `yaml:"labels"`
	Sinks struct {
		S3 *struct {
			Prefix string `yaml:"prefix"`
		} `yaml:"s3"`
		CloudWatch *struct {
			Namespace     string `yaml:"namespace"`
			PutMetricData bool   `yaml:"put_metric_data"`
		} `yaml:"cloudwatch"`
	} `yaml:"sinks"`
}

// LoadPipeline reads one pipeline configuration.
func LoadPipeline(file string) (*Pipeline, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("pipeline configuration: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var f pipelineFile
	if err := doc.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p := &Pipeline{File: file, Name: f.Pipeline, Application: f.Consumer.Application, FanOutConsumer: f.Consumer.ConsumerName,
		FanOut: f.Consumer.Retrieval == "fanout", Models: map[string]string{}, doc: &doc}
	if p.Name == "" {
		return nil, fmt.Errorf("%s: pipeline: missing", file)
	}
	if !safeName.MatchString(p.Name) {
		return nil, fmt.Errorf("%s: pipeline: %q: the stack names files, tables and Glue tables after it, so use letters, digits, '-' and '_'", file, p.Name)
	}
	if p.Application == "" {
		p.Application = p.Name // config.Consumer.Application's default
	}
	if p.FanOutConsumer == "" {
		p.FanOutConsumer = p.Application // config.Consumer.ConsumerName's default
	}
	for _, s := range f.Streams {
		if s.Name == "" {
			return nil, fmt.Errorf("%s: streams: a stream without a name", file)
		}
		p.Streams = append(p.Streams, PipelineStream{Name: s.Name, Shards: s.Shards})
	}
	if len(p.Streams) == 0 {
		return nil, fmt.Errorf("%s: streams: none", file)
	}
	for _, w := range f.Windows {
		pw := PipelineWindow{Name: w.Name, Stream: w.Stream}
		span := w.Size
		if w.Kind == "session" {
			span = w.Gap
		}
		for key, v := range map[string]string{"size or gap": span, "out_of_orderness": w.OutOfOrderness, "allowed_lateness": w.AllowedLateness} {
			if v == "" {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("%s: windows: %s: %s: %q is not a duration", file, w.Name, key, v)
			}
			pw.Hold += d
		}
		p.Windows = append(p.Windows, pw)
	}
	for name, m := range f.Models {
		p.Models[name] = m.Path
	}
	if m := f.Monitor; m != nil {
		p.Monitor = &PipelineMonitor{Prefix: m.Prefix}
		for i, w := range m.Windows {
			if !safeName.MatchString(w.Window) {
				return nil, fmt.Errorf("%s: monitor.windows[%d].window: %q: the stack names the baseline's S3 prefix and its IAM grant after it, so use letters, digits, '-' and '_'", file, i, w.Window)
			}
			p.Monitor.Windows = append(p.Monitor.Windows, MonitoredWindow{Window: w.Window, Baseline: w.Baseline})
		}
	}
	if err := p.loadFlywheel(&f); err != nil {
		return nil, err
	}
	if f.Sinks.S3 != nil {
		p.HasS3, p.S3Prefix = true, f.Sinks.S3.Prefix
	}
	if cw := f.Sinks.CloudWatch; cw != nil && cw.PutMetricData {
		p.Namespace = cw.Namespace
		if p.Namespace == "" {
			return nil, fmt.Errorf("%s: sinks.cloudwatch.namespace: needed to scope cloudwatch:PutMetricData", file)
		}
	}
	for _, sc := range f.Scorers {
		if sc.Endpoint != nil && sc.Endpoint.Name != "" {
			p.Endpoints = append(p.Endpoints, sc.Endpoint.Name)
		}
		if !p.HasS3 {
			continue
		}
		rt := ResultTable{Scorer: sc.Name, Challenger: sc.Challenger != ""}
		for _, w := range f.Windows {
			if w.Name != sc.Window {
				continue
			}
			rt.Stream = w.Stream
			for _, ft := range w.Features {
				rt.Features = append(rt.Features, ft.Name)
			}
		}
		if rt.Stream == "" {
			return nil, fmt.Errorf("%s: scorers: %s: window %q is not defined", file, sc.Name, sc.Window)
		}
		p.Scorers = append(p.Scorers, rt)
	}
	return p, nil
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Deployment holds the names of the stack's resources that a rendered
// configuration points at. In the stack they are CloudFormation tokens,
// resolved at deploy time; in tests, plain strings.
type Deployment struct {
	Bucket        string
	LeaseTable    string
	FeatureTable  string
	DeadLetterURL string
	TopicARN      string
}

// Key prefixes in the results bucket. The worker may write only below
// ResultsPrefix, DeadLetterPrefix and MonitoringPrefix, and read only the
// model objects, its own pipelines' monitoring files and its baselines.
const (
	ResultsPrefix    = "results/"
	DeadLetterPrefix = "dead-letter/"
	ModelsPrefix     = "models/"
	AthenaPrefix     = "athena-results/"
	// MonitoringPrefix is monitor.prefix of every deployed pipeline: the
	// monitor writes under <prefix><pipeline>/<window>/ (docs/monitor.md).
	MonitoringPrefix = "monitoring/"
	// BaselinesPrefix holds the baselines the user uploads, one
	// <pipeline>/<window>/ prefix each (BaselineKey).
	BaselinesPrefix = "baselines/"
	// ConstraintsPrefix holds the model-quality constraints the user
	// uploads, one <pipeline>/<scorer>/ prefix each (ConstraintsKey).
	ConstraintsPrefix = "constraints/"
)

// ResultsKeyPrefix is where a pipeline's S3 sink writes: the pipeline adds
// the scorer's name to the configured prefix (pipeline.buildScorer).
func (p *Pipeline) ResultsKeyPrefix(scorer string) string {
	return ResultsPrefix + p.S3Prefix + scorer + "/"
}

// ModelKey maps a model path of the configuration to the object the
// deployed worker loads: local files are expected under ModelsPrefix of
// the bucket by their base name (the image holds no models); s3:// paths
// stay as they are (external is true), and the deployer grants nothing on
// them: a model in another bucket needs that bucket's own policy.
func ModelKey(modelPath string) (key string, external bool) {
	if strings.HasPrefix(modelPath, "s3://") {
		return modelPath, true
	}
	return ModelsPrefix + path.Base(modelPath), false
}

// Render returns the configuration the deployed worker runs: the file as
// written, with every value that names an AWS resource pointed at this
// stack's resources. Comments and order are kept.
func (p *Pipeline) Render(d Deployment) ([]byte, error) {
	root := p.doc.Content[0]
	setAt := func(at *yaml.Node, value string, keys ...string) {
		n := ensure(at, keys...)
		n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "!!str", value, yaml.DoubleQuotedStyle
	}
	set := func(value string, keys ...string) { setAt(root, value, keys...) }
	set(d.LeaseTable, "consumer", "lease_table")
	if p.HasS3 {
		set(d.Bucket, "sinks", "s3", "bucket")
		set(ResultsPrefix+p.S3Prefix, "sinks", "s3", "prefix")
	}
	if find(root, "sinks", "feature_table") != nil {
		set(d.FeatureTable, "sinks", "feature_table", "table")
	}
	set(d.DeadLetterURL, "sinks", "dead_letter", "queue")
	// Large dead letters need the bucket; without it they could not be
	// delivered at all.
	set(d.Bucket, "sinks", "dead_letter", "bucket")
	if find(root, "alerts") != nil {
		set(d.TopicARN, "alerts", "topic")
	}
	if models := find(root, "models"); models != nil {
		for i := 0; i+1 < len(models.Content); i += 2 {
			name := models.Content[i].Value
			key, external := ModelKey(p.Models[name])
			if !external {
				set("s3://"+d.Bucket+"/"+key, "models", name, "path")
			}
		}
	}
	if p.Labels != nil {
		// The stack owns where the ground truth goes, as it owns the
		// results' prefix: the grants and the retraining job's inputs
		// name this prefix.
		set(p.GroundTruthKeyPrefix(), "labels", "prefix")
	}
	if p.Monitor != nil {
		set(MonitoringPrefix, "monitor", "prefix")
		windows := find(root, "monitor", "windows")
		for i := range p.Monitor.Windows {
			key, local, err := p.BaselineKey(i, d.Bucket)
			if err != nil {
				return nil, err
			}
			if local {
				setAt(windows.Content[i], "s3://"+d.Bucket+"/"+key, "baseline")
			}
		}
		quality := find(root, "monitor", "quality")
		for i, sc := range p.Quality {
			key, local, err := p.ConstraintsKey(sc, d.Bucket)
			if err != nil {
				return nil, err
			}
			if local {
				setAt(quality.Content[i], "s3://"+d.Bucket+"/"+key, "constraints")
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p.doc); err != nil {
		return nil, fmt.Errorf("%s: render: %w", p.File, err)
	}
	return buf.Bytes(), nil
}

// find returns the value node at keys, or nil.
func find(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// ensure returns the value node at keys, adding mappings as needed.
func ensure(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, next)
		}
		n = next
	}
	return n
}
