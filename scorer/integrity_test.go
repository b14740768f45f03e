package scorer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// rejections records OnReloadRejected calls.
type rejections struct {
	mu   sync.Mutex
	errs []error
	name []string
}

func (r *rejections) hook(model string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.name = append(r.name, model)
	r.errs = append(r.errs, err)
}

func (r *rejections) list() ([]string, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.name...), append([]error(nil), r.errs...)
}

// A pinned SHA-256 refuses any other content at start and on reload: the
// running model is kept, the refusal is counted once per version and passed
// to OnReloadRejected; a model over a limit is refused the same way.
func TestWatchDigestPinLocalFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "model.json")
	good := fixtureBytes(t, "binary_logistic.json")
	if err := os.WriteFile(p, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(t.Context(), p, nil, WithSHA256(strings.Repeat("0", 64))); !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), sha256Hex(good)) {
		t.Fatalf("wrong pin at load: %v", err)
	}
	reg := prometheus.NewRegistry()
	met, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var rej rejections
	w, err := WatchModel(t.Context(), p, WatchOptions{
		Interval: time.Hour, Name: "fraud", Metrics: met, OnReloadRejected: rej.hook,
		Load: []LoadOption{WithSHA256(strings.ToUpper(sha256Hex(good))), WithLimits(ModelLimits{MaxTrees: 1000})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	v1 := w.Current().Version()

	// Someone overwrites the file with another (valid) model.
	other := fixtureBytes(t, "reg_logistic.json")
	if err := os.WriteFile(p, other, 0o644); err != nil {
		t.Fatal(err)
	}
	bump := func() { // a distinct mtime even on coarse clocks
		st, _ := os.Stat(p)
		os.Chtimes(p, st.ModTime().Add(time.Second), st.ModTime().Add(time.Second))
	}
	bump()
	changed, err := w.Poll(t.Context())
	if changed || !errors.Is(err, ErrDigestMismatch) || w.Current().Version() != v1 {
		t.Fatalf("overwrite: changed %v, err %v, version %s", changed, err, w.Current().Version())
	}
	if changed, err := w.Poll(t.Context()); changed || err != nil {
		t.Fatalf("same refused version polled again: %v %v", changed, err)
	}
	// A model over a limit (and not the pinned content either: the digest
	// is checked first).
	if err := os.WriteFile(p, chainModel(2000, 3, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	bump()
	if changed, err := w.Poll(t.Context()); changed || !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("second overwrite: %v %v", changed, err)
	}
	names, errs := rej.list()
	if len(errs) != 2 || names[0] != "fraud" || !errors.Is(errs[0], ErrDigestMismatch) {
		t.Fatalf("OnReloadRejected calls: %v %v", names, errs)
	}
	if got := testutil.ToFloat64(met.rejected.WithLabelValues("fraud", "digest")); got != 2 {
		t.Fatalf("model_reload_rejected_total{digest} = %v, want 2", got)
	}
	// Restoring the pinned content is not a change of version.
	if err := os.WriteFile(p, good, 0o644); err != nil {
		t.Fatal(err)
	}
	bump()
	if changed, err := w.Poll(t.Context()); changed || err != nil || w.Current().Version() != v1 {
		t.Fatalf("pinned content restored: %v %v", changed, err)
	}
}

// Without a pin, a version that fails to load (here: over max_trees) is
// refused, counted as invalid, reported, and the running model kept.
func TestWatchRefusesModelOverLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "model.json")
	if err := os.WriteFile(p, chainModel(10, 3, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	met, _ := NewMetrics(prometheus.NewRegistry())
	var rej rejections
	w, err := WatchModel(t.Context(), p, WatchOptions{Interval: time.Hour, Metrics: met, OnReloadRejected: rej.hook,
		Load: []LoadOption{WithLimits(ModelLimits{MaxTrees: 100})}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	v1 := w.Current().Version()
	if err := os.WriteFile(p, chainModel(101, 3, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	os.Chtimes(p, st.ModTime().Add(time.Second), st.ModTime().Add(time.Second))
	if changed, err := w.Poll(t.Context()); changed || !errors.Is(err, ErrModelLimit) || !strings.Contains(err.Error(), "max_trees") || w.Current().Version() != v1 {
		t.Fatalf("over the limit: %v %v", changed, err)
	}
	if names, _ := rej.list(); len(names) != 1 || names[0] != p {
		t.Fatalf("OnReloadRejected: %v", names)
	}
	if got := testutil.ToFloat64(met.rejected.WithLabelValues(p, "invalid")); got != 1 {
		t.Fatalf("model_reload_rejected_total{invalid} = %v", got)
	}
}

// On the shared local S3 (versitygw without versioning): a digest-pinned
// model in S3 loads, and an overwrite of the object is refused on reload.
func TestS3DigestPinRefusesOverwrite(t *testing.T) {
	env := devstacktest.New(t)
	bucket := env.CreateBucket(t)
	key := "models/fraud/model.tar.gz"
	put := func(b []byte) {
		if _, err := env.S3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	good := fixtureBytes(t, "model.tar.gz")
	put(good)
	uri := "s3://" + bucket + "/" + key
	var rej rejections
	w, err := WatchModel(t.Context(), uri, WatchOptions{S3: env.S3, Interval: time.Hour, Name: "fraud",
		OnReloadRejected: rej.hook, Load: []LoadOption{WithSHA256(sha256Hex(good))}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	v1 := w.Current().Version()
	put(fixtureBytes(t, "early_stopping.json"))
	if changed, err := w.Poll(t.Context()); changed || !errors.Is(err, ErrDigestMismatch) || w.Current().Version() != v1 {
		t.Fatalf("overwrite: %v %v %s", changed, err, w.Current().Version())
	}
	if names, _ := rej.list(); len(names) != 1 || names[0] != "fraud" {
		t.Fatalf("OnReloadRejected: %v", names)
	}
	if _, err := LoadModel(t.Context(), uri, env.S3, WithSHA256(sha256Hex(good))); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("load of the overwritten object with the old pin: %v", err)
	}
}

// versionedS3 starts a private versitygw with bucket versioning on (the
// shared stack's has none: PutBucketVersioning answers
// VersioningNotConfigured) and returns a client for it.
func versionedS3(t *testing.T) *s3.Client {
	t.Helper()
	devstacktest.New(t) // the stack's tools are installed
	root, err := devstack.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	for _, d := range []string{"data", "versions"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	cmd := exec.Command(filepath.Join(devstack.BinDir(root), "versitygw"), "--port", addr,
		"--access", devstack.AccessKeyID, "--secret", devstack.SecretAccessKey,
		"posix", "--versioning-dir", filepath.Join(dir, "versions"), filepath.Join(dir, "data"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	c := devstack.Endpoints{S3: "http://" + addr}.Clients().S3
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			return c
		}
		select {
		case <-exited:
			t.Fatalf("versitygw exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw not ready in 60 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
}

// With version_id pinned, the loader reads that version whatever was
// written to the key since, and the watcher never swaps.
func TestS3VersionIDPin(t *testing.T) {
	c := versionedS3(t)
	bucket := "models-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(t.Context(), &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	key := "fraud/model.tar.gz"
	put := func(b []byte) string {
		out, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.VersionId) == "" {
			t.Fatal("no VersionId from a versioned bucket")
		}
		return aws.ToString(out.VersionId)
	}
	good := fixtureBytes(t, "model.tar.gz")
	v1 := put(good)
	put(fixtureBytes(t, "multi_softprob.json")) // the newest version is another model
	uri := "s3://" + bucket + "/" + key
	m, err := LoadModel(t.Context(), uri, c, WithVersionID(v1), WithSHA256(sha256Hex(good)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Objective != "binary:logistic" {
		t.Fatalf("pinned version loaded %s", m.Info().Objective)
	}
	if latest, err := LoadModel(t.Context(), uri, c); err != nil || latest.Info().Objective != "multi:softprob" {
		t.Fatalf("unpinned load: %v", err)
	}
	w, err := WatchModel(t.Context(), uri, WatchOptions{S3: c, Interval: time.Hour, Load: []LoadOption{WithVersionID(v1)}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	put(fixtureBytes(t, "reg_logistic.json"))
	if changed, err := w.Poll(t.Context()); changed || err != nil || w.Current().Info().Objective != "binary:logistic" {
		t.Fatalf("pinned watcher: %v %v %s", changed, err, w.Current().Info().Objective)
	}
	if _, err := LoadModel(t.Context(), uri, c, WithVersionID("no-such-version")); err == nil {
		t.Fatal("a missing version loaded")
	}
}
