package main

import (
	"fmt"
	"slices"
	"strings"
)

// PipelineMonitor is what the stack needs of a pipeline's monitor section
// (config.Monitor): where its files go and where each window's baseline
// is read from, since both are S3 keys the worker must be granted.
type PipelineMonitor struct {
	// Prefix is monitor.prefix as written; Render replaces it with
	// MonitoringPrefix, as the stack owns where things go.
	Prefix  string
	Windows []MonitoredWindow
}

// MonitoredWindow is one monitor.windows entry.
type MonitoredWindow struct {
	Window string
	// Baseline is the directory or s3:// prefix as written.
	Baseline string
}

// Monitored reports whether the pipeline's monitor watches any window:
// only then does its worker read and write monitoring files.
func (p *Pipeline) Monitored() bool { return p.Monitor != nil && len(p.Monitor.Windows) > 0 }

// MonitoringKeyPrefix is where the pipeline's monitor writes in the
// bucket: the pipeline adds <pipeline>/<window>/ to monitor.prefix
// (pipeline.buildMonitor).
func (p *Pipeline) MonitoringKeyPrefix() string { return MonitoringPrefix + p.Name + "/" }

// BaselineKey is the key prefix (ending in "/") in bucket, the stack's
// bucket, that the deployed worker reads monitored window i's baseline
// from. A local directory (where the baseline was made) becomes
// BaselinesPrefix<pipeline>/<window>/, where the user uploads
// statistics.json and constraints.json, as models go under ModelsPrefix;
// local is true and Render points the configuration there. An s3://
// prefix in bucket is kept. The worker is granted reads on exactly that
// prefix, so a baseline in another bucket, or one whose key IAM would
// read as more than one prefix, is an error naming the file and key.
func (p *Pipeline) BaselineKey(i int, bucket string) (key string, local bool, err error) {
	w := p.Monitor.Windows[i]
	return uploadKey(fmt.Sprintf("%s: monitor.windows[%d].baseline", p.File, i), w.Baseline, bucket,
		BaselinesPrefix+p.Name+"/"+w.Window+"/", "statistics.json and constraints.json")
}

// ConstraintsKey is, as BaselineKey is for a window's baseline, the key
// prefix the deployed worker reads scorer's model-quality constraints
// from: a local directory becomes ConstraintsPrefix<pipeline>/<scorer>/,
// where the user uploads constraints.json (or a statistics.json to
// suggest them from). No constraints: "", false.
func (p *Pipeline) ConstraintsKey(scorer, bucket string) (key string, local bool, err error) {
	c := p.QualityConstraints[scorer]
	if c == "" {
		return "", false, nil
	}
	i := slices.Index(p.Quality, scorer)
	return uploadKey(fmt.Sprintf("%s: monitor.quality[%d].constraints", p.File, i), c, bucket,
		ConstraintsPrefix+p.Name+"/"+scorer+"/", "constraints.json")
}

// uploadKey maps a directory or s3:// prefix the worker reads files from
// to a key prefix in the stack's bucket: a local directory to upload
// (local true), or an s3:// prefix in bucket kept as it is. The worker is
// granted reads on exactly that prefix, so one in another bucket, or one
// whose key IAM would read as more than one prefix, is an error naming
// the field.
func uploadKey(field, value, bucket, upload, files string) (key string, local bool, err error) {
	rest, isS3 := strings.CutPrefix(value, "s3://")
	if !isS3 {
		return upload, true, nil
	}
	b, key, _ := strings.Cut(rest, "/")
	if b != bucket {
		return "", false, fmt.Errorf("%s: %s is outside this stack's bucket, which the worker may not read; upload %s to s3://<bucket>/%s and name the local directory here instead",
			field, value, files, upload)
	}
	if key == "" || strings.ContainsAny(key, "*?") || strings.Contains(key, "${") {
		return "", false, fmt.Errorf("%s: %s: the worker's grant needs one key prefix, without IAM's wildcards or policy variables; use s3://<bucket>/%s",
			field, value, upload)
	}
	if !strings.HasSuffix(key, "/") {
		key += "/" // as dataset.LoadBaseline and LoadQualityBaseline read it
	}
	return key, false, nil
}
