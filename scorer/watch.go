package scorer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// Load options applied to every version.
	Load []LoadOption
	// Check may reject a new version before it is swapped in (for example
	// scorer.CheckSchema against the pipeline's feature schema). A version
	// whose number of outputs differs from the first one is always rejected.
	Check func(*Model) error
	// Logger receives reload events; default slog.Default().
	Logger  *slog.Logger
	Metrics *Metrics
}

// Watcher is a ModelSource that hot-reloads a model file or S3 object: when
// the file's content (or the object's ETag) changes, the new version is
// loaded, checked and swapped in atomically. Scorers read the current model
// once per batch, so a swap happens between batches.
type Watcher struct {
	uri     string
	o       WatchOptions
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
	w := &Watcher{uri: uri, o: o, done: make(chan struct{})}
	m, tag, err := w.load(ctx, "")
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("model %s: not found", uri)
	}
	if o.Check != nil {
		if err := o.Check(m); err != nil {
			return nil, fmt.Errorf("model %s: %w", uri, err)
		}
	}
	w.cur.Store(m)
	w.lastTag = tag
	ctx, w.cancel = context.WithCancel(ctx)
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
					"model", w.uri, "version", w.Current().Version(), "err", err)
			}
		}
	}
}

// Poll checks for a new version now and swaps it in if there is one. It
// reports whether the model changed.
func (w *Watcher) Poll(ctx context.Context) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, tag, err := w.load(ctx, w.lastTag)
	if err != nil {
		w.o.Metrics.reload(false)
		return false, err
	}
	if m == nil { // unchanged
		return false, nil
	}
	old := w.Current()
	if m.Version() == old.Version() {
		w.lastTag = tag // touched but identical content
		return false, nil
	}
	if m.Outputs() != old.Outputs() {
		w.o.Metrics.reload(false)
		return false, fmt.Errorf("model %s: new version %s has %d outputs, the running one %d", w.uri, m.Version(), m.Outputs(), old.Outputs())
	}
	if w.o.Check != nil {
		if err := w.o.Check(m); err != nil {
			w.o.Metrics.reload(false)
			return false, fmt.Errorf("model %s: new version %s rejected: %w", w.uri, m.Version(), err)
		}
	}
	w.cur.Store(m)
	w.lastTag = tag
	w.o.Metrics.reload(true)
	w.o.Logger.Info("model reloaded", "model", w.uri, "from", old.Version(), "to", m.Version(),
		"objective", m.info.Objective, "trees", m.info.Trees)
	return true, nil
}

// load returns the model if its tag differs from lastTag, or nil if unchanged.
func (w *Watcher) load(ctx context.Context, lastTag string) (*Model, string, error) {
	if strings.HasPrefix(w.uri, "s3://") {
		if w.o.S3 == nil {
			return nil, "", fmt.Errorf("model %s: an S3 client is needed for s3:// URIs", w.uri)
		}
		if lastTag != "" {
			etag, err := headS3ETag(ctx, w.o.S3, w.uri)
			if err != nil {
				return nil, "", fmt.Errorf("model %s: %w", w.uri, err)
			}
			if etag == lastTag {
				return nil, "", nil
			}
		}
		data, etag, err := getS3Object(ctx, w.o.S3, w.uri)
		if err != nil {
			return nil, "", fmt.Errorf("model %s: %w", w.uri, err)
		}
		m, err := ParseModel(data, append(w.o.Load, withSource(w.uri, "etag:"+etag))...)
		return m, etag, err
	}
	path, err := resolveModelPath(w.uri)
	if err != nil {
		return nil, "", err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("model: %w", err)
	}
	tag := fmt.Sprintf("%s/%d/%d", path, st.Size(), st.ModTime().UnixNano())
	if tag == lastTag {
		return nil, "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("model: %w", err)
	}
	sum := sha256.Sum256(data)
	m, err := ParseModel(data, append(w.o.Load, withSource(path, "sha256:"+hex.EncodeToString(sum[:8])))...)
	return m, tag, err
}
