package devstack

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/promotion/dynamo"
)

// PlanFor lists the resources a pipeline configuration names: its streams
// (with their local shard counts and, when need is given, the retention
// their windows need: pipeline.WindowRetention, which refuses to start on
// less), the feature table, the buckets, the alert topic with a queue
// subscribed to it (so alerts can be watched locally), the dead-letter
// queue, the review queue (alerts.review.queue), and the promotion decision table of each scorer with a promotion
// policy (in AWS the CDK app makes it; workers may not create tables). The lease table is left to the consumer, which creates it on
// start as the Java KCL does.
func PlanFor(need func(config.Window) time.Duration, cfgs ...*config.Config) Plan {
	var p Plan
	addBucket := func(b string) {
		if b != "" && !slices.Contains(p.Buckets, b) {
			p.Buckets = append(p.Buckets, b)
		}
	}
	for _, cfg := range cfgs {
		for _, s := range cfg.Streams {
			if !slices.ContainsFunc(p.Streams, func(x StreamPlan) bool { return x.Name == s.Name }) {
				p.Streams = append(p.Streams, StreamPlan{Name: s.Name, Shards: max(s.Shards, 1)})
			}
		}
		for _, w := range cfg.Windows {
			if need == nil {
				break
			}
			hours := int((need(w) + time.Hour - 1) / time.Hour)
			for i := range p.Streams {
				if p.Streams[i].Name == w.Stream {
					p.Streams[i].RetentionHours = max(p.Streams[i].RetentionHours, hours)
				}
			}
		}
		if ft := cfg.Sinks.FeatureTable; ft != nil && !slices.ContainsFunc(p.Tables, func(t TablePlan) bool { return t.Name == ft.Table }) {
			p.Tables = append(p.Tables, TablePlan{Name: ft.Table, HashKey: "entity", RangeKey: "feature_set"}) // sinks.FeatureLayout
		}
		for _, sc := range cfg.Scorers {
			if sc.Promotion == nil {
				continue
			}
			if name := sc.Promotion.TableName(cfg.Pipeline); !slices.ContainsFunc(p.Tables, func(t TablePlan) bool { return t.Name == name }) {
				p.Tables = append(p.Tables, TablePlan{Name: name, HashKey: dynamo.AttrPipeline, RangeKey: dynamo.AttrScorer})
			}
		}
		if s3 := cfg.Sinks.S3; s3 != nil {
			addBucket(s3.Bucket)
		}
		if dl := cfg.Sinks.DeadLetter; dl != nil {
			addBucket(dl.Bucket)
			if !slices.ContainsFunc(p.Queues, func(q QueuePlan) bool { return q.Name == dl.Queue }) {
				p.Queues = append(p.Queues, QueuePlan{Name: dl.Queue})
			}
		}
		if rv := cfg.Alerts.Review; rv != nil && rv.Queue != "" && !strings.Contains(rv.Queue, "://") &&
			!slices.ContainsFunc(p.Queues, func(q QueuePlan) bool { return q.Name == rv.Queue }) {
			p.Queues = append(p.Queues, QueuePlan{Name: rv.Queue, FIFO: strings.HasSuffix(rv.Queue, ".fifo")})
		}
		if t := cfg.Alerts.Topic; t != "" && !strings.HasPrefix(t, "arn:") &&
			!slices.ContainsFunc(p.Topics, func(x TopicPlan) bool { return x.Name == t }) {
			fifo := strings.HasSuffix(t, ".fifo")
			q := strings.TrimSuffix(t, ".fifo") + "-watch"
			if fifo {
				q += ".fifo"
			}
			p.Topics = append(p.Topics, TopicPlan{Name: t, FIFO: fifo, Queues: []string{q}})
		}
	}
	return p
}

// EnvLines renders the stack's variables as shell export lines. Besides the
// SDK's own variables it points AWS_CONFIG_FILE at a config that loads a
// small plugin (devstack/awscli), so that AWS CLIs too old to read
// AWS_ENDPOINT_URL_* (v2 before 2.13, v1 before 1.29) reach the local stack
// too. v2 finds the plugin through the config's cli_legacy_plugin_path; v1
// has no such key and imports plugins from sys.path only, hence PYTHONPATH
// (see the plugin's docstring for how one config serves both).
func (st *State) EnvLines(root string) ([]string, error) {
	var lines []string
	for _, kv := range st.Endpoints.EnvVars() {
		lines = append(lines, fmt.Sprintf("export %s=%s", kv[0], shellQuote(kv[1])))
	}
	plugin, err := filepath.Abs(filepath.Join(root, "devstack", "awscli"))
	if err != nil {
		return nil, fmt.Errorf("devstack: AWS CLI plugin directory: %w", err)
	}
	if strings.ContainsAny(plugin, string(os.PathListSeparator)+"\n") {
		// Both the CLI's plugin path and PYTHONPATH are lists split on it.
		return nil, fmt.Errorf("devstack: AWS CLI plugin directory %q contains %q or a newline", plugin, os.PathListSeparator)
	}
	cfgPath := filepath.Join(st.Dir, "aws-config")
	// The plugin must come before cli_legacy_plugin_path: v1 imports the
	// entries in order, and the plugin is what lets it import the path.
	body := fmt.Sprintf("[default]\nregion = %s\noutput = json\n\n[plugins]\nstreamscore_endpoints = streamscore_endpoints\ncli_legacy_plugin_path = %s\n", Region, plugin)
	if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	lines = append(lines,
		"export AWS_CONFIG_FILE="+shellQuote(cfgPath),
		// Prepended, not replaced: the user's own entries keep working.
		"export PYTHONPATH="+shellQuote(plugin)+`"${PYTHONPATH:+:$PYTHONPATH}"`,
		// Static credentials come from the variables above; a shared
		// credentials file must not override them.
		"export AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CA_BUNDLE",
	)
	return lines, nil
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
