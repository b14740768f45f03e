package scorer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WatchOptions configures WatchModel.
type WatchOptions struct {
	// Interval between checks for a new version; default 30 s.
	Interval time.Duration
	// S3 is required for s3:// URIs.
	S3 ObjectGetter
	// Load options applied to every version: WithSHA256 and WithVersionID
	// pin the content, WithLimits bounds it.
	Load []LoadOption
	// Check may reject a new version before it is swapped in (for example
	// scorer.CheckSchema against the pipeline's feature schema). A version
	// whose number of outputs differs from the first one is always rejected.
	Check func(*Model) error
	// Name names the model in metrics, logs and OnReloadRejected (the
	// config's model key); default the URI.
	Name string
	// OnReloadRejected, if set, is called (from the watcher's goroutine, or
	// Poll's caller) when a new version was read but refused: its digest is
	// not the pinned one (errors.Is(err, ErrDigestMismatch)), it fails to
	// load or is over a limit (ErrModelLimit), or Check refused it. The
	// running model is kept. Each refused version is reported once; a
	// failure to reach the file or S3 is not a refusal (it is logged and
	// counted as a reload error, and retried).
	OnReloadRejected func(model string, err error)
	// Logger receives reload events; default slog.Default().
	Logger  *slog.Logger
	Metrics *Metrics
}

// Watcher is a ModelSource that hot-reloads a model file or S3 object: when
// the file's content (or the object's ETag) changes, the new version is
// loaded, verified, checked and swapped in atomically. Scorers read the
// current model once per batch, so a swap happens between batches.
//
// With WithVersionID the object version is fixed, so there is nothing to
// reload: the watcher loads it once and does not poll (a new version is
// rolled out by changing the pin). With WithSHA256 the content is fixed:
// the watcher keeps polling and refuses, reports and counts any other
// content written to the key, so an accidental or hostile overwrite is
// never scored and is seen within one interval.
type Watcher struct {
	uri     string
	name    string
	o       WatchOptions
	lo      loadOptions
	cur     atomic.Pointer[Model]
	mu      sync.Mutex // serialises polls
	lastTag string     // ETag, or file size+mtime, of the last version seen
	cancel  context.CancelFunc
	done    chan struct{}
}

// WatchModel loads the model at uri (a path or s3:// URI) and starts
// watching it until ctx ends or Close is called.
func WatchModel(ctx context.Context, uri string, o WatchOptions) (*Watcher, error) {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	w := &Watcher{uri: uri, name: o.Name, o: o, lo: applyLoadOptions(o.Load), done: make(chan struct{})}
	if w.name == "" {
		w.name = uri
	}
	data, tag, src, err := w.fetch(ctx, "")
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("model %s: not found", uri)
	}
	m, err := ParseModel(data, append(w.o.Load, src)...)
	if err != nil {
		return nil, err
	}
	if o.Check != nil {
		if err := o.Check(m); err != nil {
			return nil, fmt.Errorf("model %s: %w", uri, err)
		}
	}
	w.cur.Store(m)
	w.lastTag = tag
	ctx, w.cancel = context.WithCancel(ctx)
	if w.lo.versionID != "" && strings.HasPrefix(uri, "s3://") {
		o.Logger.Info("model pinned to an S3 version: hot reload is off until the pin changes",
			"model", w.name, "version_id", w.lo.versionID)
		close(w.done)
		return w, nil
	}
	go w.loop(ctx)
	return w, nil
}

// Current returns the model to score the next batch with.
func (w *Watcher) Current() *Model { return w.cur.Load() }

// Close stops watching and waits for the watcher goroutine to end.
func (w *Watcher) Close() {
	w.cancel()
	<-w.done
}

func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := w.Poll(ctx); err != nil && ctx.Err() == nil {
				w.o.Logger.Warn("model reload failed; keeping the current version",
					"model", w.name, "version", w.Current().Version(), "err", err)
			}
		}
	}
}

// Poll checks for a new version now and swaps it in if there is one. It
// reports whether the model changed.
func (w *Watcher) Poll(ctx context.Context) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lo.versionID != "" && strings.HasPrefix(w.uri, "s3://") {
		return false, nil // pinned: nothing can change
	}
	data, tag, src, err := w.fetch(ctx, w.lastTag)
	if err != nil {
		w.o.Metrics.reload(false)
		return false, err
	}
	if data == nil { // unchanged
		return false, nil
	}
	old := w.Current()
	m, err := ParseModel(data, append(w.o.Load, src)...)
	if err != nil {
		reason := "invalid"
		if errors.Is(err, ErrDigestMismatch) {
			reason = "digest"
		}
		return false, w.reject(tag, reason, err)
	}
	if m.Version() == old.Version() {
		w.lastTag = tag // touched but identical content
		return false, nil
	}
	if m.Outputs() != old.Outputs() {
		return false, w.reject(tag, "check", fmt.Errorf("model %s: new version %s has %d outputs, the running one %d", w.uri, m.Version(), m.Outputs(), old.Outputs()))
	}
	if w.o.Check != nil {
		if err := w.o.Check(m); err != nil {
			return false, w.reject(tag, "check", fmt.Errorf("model %s: new version %s rejected: %w", w.uri, m.Version(), err))
		}
	}
	w.cur.Store(m)
	w.lastTag = tag
	w.o.Metrics.reload(true)
	w.o.Logger.Info("model reloaded", "model", w.name, "from", old.Version(), "to", m.Version(),
		"objective", m.info.Objective, "trees", m.info.Trees)
	return true, nil
}

// reject keeps the running model, remembers the refused version's tag (so
// it is reported once, not every interval) and reports it.
func (w *Watcher) reject(tag, reason string, err error) error {
	w.lastTag = tag
	w.o.Metrics.reload(false)
	w.o.Metrics.reloadRejected(w.name, reason)
	w.o.Logger.Error("new model version refused; keeping the running one",
		"model", w.name, "version", w.Current().Version(), "reason", reason, "err", err)
	if w.o.OnReloadRejected != nil {
		w.o.OnReloadRejected(w.name, err)
	}
	return err
}

// fetch returns the model's bytes if its tag differs from lastTag (nil if
// unchanged), with the tag and the source option to parse them with.
func (w *Watcher) fetch(ctx context.Context, lastTag string) ([]byte, string, LoadOption, error) {
	maxBytes := w.lo.limits.MaxFileBytes
	if strings.HasPrefix(w.uri, "s3://") {
		if w.o.S3 == nil {
			return nil, "", nil, fmt.Errorf("model %s: an S3 client is needed for s3:// URIs", w.uri)
		}
		if lastTag != "" {
			etag, err := headS3ETag(ctx, w.o.S3, w.uri)
			if err != nil {
				return nil, "", nil, fmt.Errorf("model %s: %w", w.uri, err)
			}
			if etag == lastTag {
				return nil, "", nil, nil
			}
		}
		data, etag, err := getS3Object(ctx, w.o.S3, w.uri, w.lo.versionID, maxBytes)
		if err != nil {
			return nil, "", nil, fmt.Errorf("model %s: %w", w.uri, err)
		}
		return data, etag, withSource(w.uri, "etag:"+etag), nil
	}
	path, err := resolveModelPath(w.uri)
	if err != nil {
		return nil, "", nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", nil, fmt.Errorf("model: %w", err)
	}
	tag := fmt.Sprintf("%s/%d/%d", path, st.Size(), st.ModTime().UnixNano())
	if tag == lastTag {
		return nil, "", nil, nil
	}
	data, err := readModelFile(path, maxBytes)
	if err != nil {
		return nil, "", nil, err
	}
	sum := sha256.Sum256(data)
	return data, tag, withSource(path, "sha256:"+hex.EncodeToString(sum[:8])), nil
}
