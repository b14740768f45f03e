package training

// One training run: the request's training set, train.py on it, the model
// under its immutable key and at the challenger's path.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/retrain"
)

// Defaults of Options.
const (
	// DefaultPython is Debian's interpreter, which python3-xgboost serves.
	DefaultPython = "/usr/bin/python3"
	// DefaultScript is the repository's training script, relative to the
	// working directory.
	DefaultScript = "examples/models/train.py"
)

// maxStderr bounds how much of train.py's error output an error carries.
const maxStderr = 4 << 10

// S3 is what a run needs of an S3 client (*s3.Client satisfies it).
type S3 interface {
	dataset.S3
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// Options say how Run trains.
type Options struct {
	// Config is the pipeline's configuration: the scorer, its quality
	// entry (horizon, threshold), its challenger's path, the bucket.
	Config *config.Config
	// S3 reads the data and writes the model.
	S3 S3
	// Python runs the script; default DefaultPython.
	Python string
	// Script is train.py; default DefaultScript.
	Script string
	// Bucket receives models/<pipeline>/<scorer>/<request_id>/model.json;
	// default the configuration's sinks.s3.bucket.
	Bucket string
	// WorkDir holds the run's files while it runs; default os.TempDir().
	WorkDir string
	Logger  *slog.Logger
}

// Result is what a run made.
type Result struct {
	// Model is the immutable s3:// URI of the model.
	Model string `json:"model"`
	// Challenger is the challenger's s3:// path the model was copied to
	// ("" when the scorer's challenger is not in S3).
	Challenger string `json:"challenger,omitempty"`
	// SHA256 is the hex SHA-256 of the model file.
	SHA256 string `json:"sha256"`
	// Reused: the model key already held this request's model (a retried
	// task), so nothing was trained again.
	Reused bool `json:"reused,omitempty"`
	// Set is the training set's counts (nil when Reused).
	Set *SetStats `json:"set,omitempty"`
	// Report is train.py's report (JSON), when it trained.
	Report json.RawMessage `json:"report,omitempty"`
}

// ParseRequest reads a "Retraining Requested" event: its detail, or the
// whole EventBridge envelope ("detail-type" and "detail").
func ParseRequest(data []byte) (*retrain.RetrainingRequested, error) {
	var env struct {
		DetailType string          `json:"detail-type"`
		Detail     json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("request: not JSON: %w", err)
	}
	if env.DetailType != "" || env.Detail != nil {
		if env.DetailType != retrain.DetailTypeRetrainingRequested {
			return nil, fmt.Errorf("request: detail-type %q: want %q", env.DetailType, retrain.DetailTypeRetrainingRequested)
		}
		data = env.Detail
	}
	var r retrain.RetrainingRequested
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("request: detail: %w", err)
	}
	switch {
	case r.SchemaVersion != retrain.SchemaVersion:
		return nil, fmt.Errorf("request: schema_version %d: this build reads %d", r.SchemaVersion, retrain.SchemaVersion)
	case r.RequestID == "" || strings.ContainsAny(r.RequestID, "/\\") || r.RequestID == "." || r.RequestID == "..":
		return nil, fmt.Errorf("request: request_id %q: want a non-empty name without slashes", r.RequestID)
	case r.Scorer == "":
		return nil, errors.New("request: no scorer")
	case r.Pipeline == "":
		return nil, errors.New("request: no pipeline")
	case r.Data.From.IsZero() || r.Data.To.IsZero():
		return nil, errors.New("request: data.from and data.to are required")
	}
	return &r, nil
}

// ModelKey is the immutable key of a request's model in the bucket.
func ModelKey(pipeline, scorer, requestID string) string {
	return fmt.Sprintf("models/%s/%s/%s/model.json", pipeline, scorer, requestID)
}

// Run trains the request's model and publishes it: under ModelKey, never
// overwritten (a retried request finds its model there and only makes
// sure it is the challenger), and at the scorer's challenger path when it
// is an s3:// URI, where the challenger's watcher reloads it.
func Run(ctx context.Context, req *retrain.RetrainingRequested, o Options) (*Result, error) {
	if o.Config == nil || o.S3 == nil {
		return nil, errors.New("training: a configuration and an S3 client are required")
	}
	plan, err := planRun(req, o)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("request", req.RequestID, "scorer", req.Scorer)
	res := &Result{Model: "s3://" + plan.bucket + "/" + plan.key, Challenger: plan.challenger}

	model, err := existing(ctx, o.S3, plan.bucket, plan.key)
	if err != nil {
		return nil, err
	}
	if model != nil {
		res.Reused = true
		log.Info("training: the request's model is already published; not training again", "model", res.Model)
	} else {
		if model, res.Set, res.Report, err = train(ctx, req, o, plan, log); err != nil {
			return nil, err
		}
		_, err := o.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(plan.bucket), Key: aws.String(plan.key),
			Body: bytes.NewReader(model), IfNoneMatch: aws.String("*"), ContentType: aws.String("application/json")})
		if ae := smithy.APIError(nil); errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" {
			// Another run of the request published first: its model is
			// the request's, and the one this run made is dropped.
			if model, err = existing(ctx, o.S3, plan.bucket, plan.key); err == nil && model == nil {
				err = fmt.Errorf("training: %s: refused as existing, then not found", res.Model)
			}
			if err != nil {
				return nil, err
			}
			res.Reused = true
		} else if err != nil {
			return nil, fmt.Errorf("training: writing %s: %w", res.Model, err)
		}
	}
	sum := sha256.Sum256(model)
	res.SHA256 = hex.EncodeToString(sum[:])
	if plan.challenger != "" {
		b, k, _ := splitS3(plan.challenger)
		if _, err := o.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(k), Body: bytes.NewReader(model),
			ContentType: aws.String("application/json")}); err != nil {
			return nil, fmt.Errorf("training: writing the challenger %s: %w", plan.challenger, err)
		}
	}
	log.Info("training: model published", "model", res.Model, "challenger", res.Challenger, "sha256", res.SHA256)
	return res, nil
}

// plan is what a run resolved from the request and the configuration.
type plan struct {
	set        SetOptions
	threshold  float64
	bucket     string
	key        string
	challenger string
}

func planRun(req *retrain.RetrainingRequested, o Options) (*plan, error) {
	cfg := o.Config
	if req.Pipeline != cfg.Pipeline {
		return nil, fmt.Errorf("training: request %s is for pipeline %q; the configuration %s is %q", req.RequestID, req.Pipeline, cfg.File, cfg.Pipeline)
	}
	var sc *config.Scorer
	for i := range cfg.Scorers {
		if cfg.Scorers[i].Name == req.Scorer {
			sc = &cfg.Scorers[i]
		}
	}
	if sc == nil {
		return nil, fmt.Errorf("training: request %s: scorer %q is not in %s", req.RequestID, req.Scorer, cfg.File)
	}
	var qm *config.QualityMonitor
	for i := range cfg.Monitor.Quality {
		if cfg.Monitor.Quality[i].Scorer == sc.Name {
			qm = &cfg.Monitor.Quality[i]
		}
	}
	if qm == nil {
		return nil, fmt.Errorf("training: %s: scorer %q has no monitor.quality entry, so nothing says how its labels judge its predictions", cfg.File, sc.Name)
	}
	if qm.Problem != "" && qm.Problem != string(dataset.ProblemBinary) {
		return nil, fmt.Errorf("training: %s: scorer %q is judged as %s; train.py trains binary classifiers", cfg.File, sc.Name, qm.Problem)
	}
	if req.Data.ResultsPrefix == "" {
		return nil, fmt.Errorf("training: request %s has no data.results_prefix (the pipeline has no S3 sink)", req.RequestID)
	}
	p := &plan{threshold: qm.Threshold, key: ModelKey(req.Pipeline, sc.Name, req.RequestID), bucket: o.Bucket}
	if p.bucket == "" && cfg.Sinks.S3 != nil {
		p.bucket = cfg.Sinks.S3.Bucket
	}
	if p.bucket == "" {
		return nil, fmt.Errorf("training: no bucket for the model: %s has no sinks.s3", cfg.File)
	}
	p.set = SetOptions{S3: o.S3, Results: prefixURI(req.Data.ResultsPrefix) + sc.Name + "/", GroundTruth: req.Data.GroundTruthPrefix,
		From: req.Data.From, To: req.Data.To, Horizon: qm.Horizon.D(), Delay: pipeline.DefaultLabelsDelay}
	if cfg.Labels != nil && cfg.Labels.Delay > 0 {
		p.set.Delay = cfg.Labels.Delay.D()
	}
	if sc.Challenger != "" {
		if m := cfg.Models[sc.Challenger]; m != nil && strings.HasPrefix(m.Path, "s3://") {
			if strings.HasSuffix(m.Path, ".tar.gz") {
				return nil, fmt.Errorf("training: %s: the challenger %s's path %s is a model.tar.gz; train.py writes XGBoost JSON: point the challenger at a .json key", cfg.File, sc.Challenger, m.Path)
			}
			if _, _, err := splitS3(m.Path); err != nil {
				return nil, fmt.Errorf("training: %s: challenger %s: %w", cfg.File, sc.Challenger, err)
			}
			p.challenger = m.Path
		}
	}
	return p, nil
}

// existing is the model already at key, nil when there is none.
func existing(ctx context.Context, c S3, bucket, key string) ([]byte, error) {
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		if dataset.Absent(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("training: checking s3://%s/%s: %w", bucket, key, err)
	}
	b, err := dataset.ReadObject(ctx, c, bucket, key)
	if err != nil {
		return nil, fmt.Errorf("training: %w", err)
	}
	return b, nil
}

// train builds the set in a directory of its own and runs the script.
func train(ctx context.Context, req *retrain.RetrainingRequested, o Options, p *plan, log *slog.Logger) ([]byte, *SetStats, json.RawMessage, error) {
	dir, err := os.MkdirTemp(o.WorkDir, "streamscore-train-")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("training: %w", err)
	}
	defer os.RemoveAll(dir)
	csvPath := filepath.Join(dir, "train.csv")
	f, err := os.Create(csvPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("training: %w", err)
	}
	p.set.Dir = filepath.Join(dir, "results")
	p.set.Bad = func(e *dataset.RecordError) error {
		log.Warn("training: a record left out", "error", e)
		return nil
	}
	started := time.Now()
	st, err := BuildSet(ctx, p.set, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("training: request %s: %w", req.RequestID, err)
	}
	log.Info("training: set built", "rows", st.Rows, "positives", st.Positives, "unlabelled", st.Unlabelled,
		"files", st.Files, "features", len(st.Features), "took", time.Since(started))
	if st.Positives == 0 || st.Positives == st.Rows {
		return nil, st, nil, fmt.Errorf("training: request %s: %d labelled rows in (%s, %s], %d positive: a classifier needs both classes",
			req.RequestID, st.Rows, p.set.From.Format(time.RFC3339), p.set.To.Format(time.RFC3339), st.Positives)
	}
	python, script := o.Python, o.Script
	if python == "" {
		python = DefaultPython
	}
	if script == "" {
		script = DefaultScript
	}
	out, report := filepath.Join(dir, "model.json"), filepath.Join(dir, "report.json")
	// The held-out set is the training set itself: train.py's report is
	// then in-sample, and the real judgement of the model is the
	// promotion policy's, on the challenger's live labelled rows.
	args := []string{script, "--train", csvPath, "--test", csvPath, "--features", strings.Join(st.Features, ","),
		"--out", out, "--report", report}
	if p.threshold > 0 {
		args = append(args, "--threshold", strconv.FormatFloat(p.threshold, 'g', -1, 64))
	}
	cmd := exec.CommandContext(ctx, python, args...)
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &limited{buf: &stderr, n: maxStderr}
	if err := cmd.Run(); err != nil {
		return nil, st, nil, fmt.Errorf("training: %s %s: %w: %s", python, script, err, strings.TrimSpace(stderr.String()))
	}
	model, err := os.ReadFile(out)
	if err != nil {
		return nil, st, nil, fmt.Errorf("training: the model %s did not write: %w", script, err)
	}
	rep, err := os.ReadFile(report)
	if err != nil || !json.Valid(rep) {
		rep = nil
	}
	return model, st, rep, nil
}

// limited keeps the last n bytes written to it: a Python traceback's
// last lines say what failed.
type limited struct {
	buf *bytes.Buffer
	n   int
}

func (l *limited) Write(b []byte) (int, error) {
	l.buf.Write(b)
	if over := l.buf.Len() - l.n; over > 0 {
		l.buf.Next(over)
	}
	return len(b), nil
}
