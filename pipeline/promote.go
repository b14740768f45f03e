package pipeline

// Promotion in the running pipeline (docs/flywheel.md): every worker
// follows a scorer's champion decision in DynamoDB and swaps the model it
// scores with through a scorer.Switch, without a restart; the reducer's
// quality monitor judges the challenger against the champion on the same
// labelled rows each period and, with auto, writes the decision once.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// promoter is one scorer's promotion: the decision it follows and, on the
// reducer, the policy it applies.
type promoter struct {
	pipeline, scorer string
	policy           promotion.Policy
	auto             bool
	store            *dynamo.Store
	sw               *scorer.Switch
	// configured is the champion the config names, and its source.
	configured    promotion.Model
	configuredSrc scorer.ModelSource
	// configuredChallenger is the configured challenger as a promotion
	// records it, read again at each promotion (training may have
	// written a new one to its path).
	configuredChallenger func(ctx context.Context) (promotion.Model, error)
	// registered follows the challenger registration of the retraining
	// state machine; nil when the challenger is not switchable.
	registered *registeredChallenger
	// keep copies a model about to be promoted to an immutable path.
	keep func(ctx context.Context, m promotion.Model) (promotion.Model, error)
	// load opens a decided champion as a watched source (its digest
	// pinned); the pipeline closes what it opened.
	load  func(ctx context.Context, m promotion.Model) (*scorer.Watcher, error)
	alert func(al sinks.Alert)
	// announce publishes a decision this worker wrote (a Model Promoted
	// event, with monitor.retrain); a no-op without.
	announce func(ctx context.Context, d promotion.Decision)
	log      *slog.Logger
	by       string

	mu       sync.Mutex
	promoted *scorer.Watcher // the source a decision opened, nil for the configured one
	applied  promotion.Decision
}

// apply makes a decision's champion the one scored: the configured model
// again, or the decided one, loaded with its digest pinned and checked
// against the window before it is swapped in. An error keeps the running
// model; the follower tries again at its next read.
func (pr *promoter) apply(ctx context.Context, d promotion.Decision) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	ch := d.Champion
	var next *scorer.Watcher
	if ch.Path != pr.configured.Path || ch.SHA256 != "" && pr.configured.SHA256 != "" && ch.SHA256 != pr.configured.SHA256 {
		w, err := pr.load(ctx, ch)
		if err != nil {
			return fmt.Errorf("champion %s (%s) of generation %d: %w", ch.Key, ch.Path, d.Generation, err)
		}
		next = w
	}
	if next != nil {
		pr.sw.Set(next)
	} else {
		pr.sw.Set(pr.configuredSrc)
	}
	if pr.promoted != nil {
		pr.promoted.Close()
	}
	pr.promoted, pr.applied = next, d
	pr.log.Info("promotion: champion applied", "generation", d.Generation, "model", ch.Key, "path", ch.Path, "reason", d.Reason)
	return nil
}

// close releases the source a decision opened.
func (pr *promoter) close() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.promoted != nil {
		pr.promoted.Close()
		pr.promoted = nil
	}
}

// judge applies the policy to a period's challengers, on the reducer.
// It returns each verdict for the period's judgement; with auto, a
// verdict to promote is written as the decision (conditional on the
// generation read, so two reducers of a failover promote once) and
// alerted.
func (pr *promoter) judge(ctx context.Context, models []dataset.ModelQuality) []promotion.Verdict {
	var out []promotion.Verdict
	for _, m := range models {
		if m.Role != dataset.RoleChallenger || m.Champion == nil {
			continue
		}
		v := promotion.Evaluate(pr.policy, promotion.Scored{Name: "as served", Stats: m.Champion},
			promotion.Scored{Name: m.Version, Stats: m.Statistics}, m.Statistics.Dataset.ItemCount)
		out = append(out, v)
		pr.log.Info("promotion: challenger judged", "outcome", v.Outcome, "reason", v.Reason)
		if !v.Promote || !pr.auto {
			continue
		}
		if err := pr.promote(ctx, v); err != nil {
			pr.log.Error("promotion: not written", "err", err)
		}
	}
	return out
}

func (pr *promoter) promote(ctx context.Context, v promotion.Verdict) error {
	cur, err := pr.store.Current(ctx)
	if err != nil {
		return err
	}
	chal, immutable, err := pr.challenger(ctx)
	if err != nil {
		return err
	}
	if cur.Champion.SHA256 == chal.SHA256 {
		return nil // promoted already: the challenger now shadows itself
	}
	// The decision names a copy no later write changes: the configured
	// challenger's path is where the next trained model goes. A
	// registered model is at its training job's own path already.
	to := chal
	if !immutable {
		if to, err = pr.keep(ctx, chal); err != nil {
			return err
		}
	}
	d, err := pr.store.Promote(ctx, cur.Generation, to, v.Reason, pr.by)
	if errors.Is(err, promotion.ErrConflict) {
		return nil // another writer decided first; the follower applies it
	}
	if err != nil {
		return err
	}
	pr.announce(ctx, d)
	pr.alert(sinks.Alert{Rule: "model-promoted", State: "firing", Severity: "info", Model: to.Key, Pipeline: pr.pipeline, Scorer: pr.scorer,
		Subject: fmt.Sprintf("streamscore %s: %s promoted to champion of %s", pr.pipeline, to.Key, pr.scorer),
		Message: fmt.Sprintf("generation %d: %s (was %s). Roll back with: streamscore model rollback --config FILE --scorer %s",
			d.Generation, v.Reason, cur.Champion.Key, pr.scorer)})
	return nil
}

// challenger is the model a promotion makes champion: the registered
// challenger scored, at the path and with the digest loaded, or else the
// configured one. immutable is true for a registered model, whose path is
// its training job's own and never rewritten, so a decision may name it
// as it is.
func (pr *promoter) challenger(ctx context.Context) (m promotion.Model, immutable bool, err error) {
	if m, ok := pr.registered.promotable(); ok {
		return m, true, nil
	}
	m, err = pr.configuredChallenger(ctx)
	return m, false, err
}

// PromotableModel is a configured model as a decision records it: loaded
// with its pins and limits (a model that does not load is never
// promoted), with its version and digest.
func PromotableModel(ctx context.Context, cfg *config.Config, key string, s3 scorer.ObjectGetter) (promotion.Model, error) {
	mc := cfg.Models[key]
	if mc == nil {
		return promotion.Model{}, fmt.Errorf("%s: no model %q (models: %s)", cfg.File, key, strings.Join(slices.Sorted(maps.Keys(cfg.Models)), ", "))
	}
	loaded, err := scorer.LoadModel(ctx, mc.Path, s3, loadOptions(mc)...)
	if err != nil {
		return promotion.Model{}, fmt.Errorf("model %s does not load, so it is not promoted: %w", key, err)
	}
	inf := loaded.Info()
	return promotion.Model{Key: key, Path: mc.Path, Version: inf.Version, SHA256: inf.SHA256}, nil
}

// buildPromoter wires a scorer's promotion: its decision store, the
// champion's switch, and the challenger a promotion would make champion.
func (p *Pipeline) buildPromoter(ctx context.Context, s config.Scorer, sw *scorer.Switch, configured scorer.ModelSource,
	load func(context.Context, promotion.Model) (*scorer.Watcher, error), registered *registeredChallenger, c Clients, o Options) (*promoter, error) {
	pc := s.Promotion
	cm := p.cfg.Models[s.Model]
	conf := promotion.Model{Key: s.Model, Path: cm.Path, SHA256: cm.SHA256}
	store, err := dynamo.NewStore(c.DynamoDB, dynamo.Config{Table: pc.TableName(p.cfg.Pipeline), Pipeline: p.cfg.Pipeline, Scorer: s.Name, Configured: conf})
	if err != nil {
		return nil, fmt.Errorf("pipeline: scorer %s: promotion: %w", s.Name, err)
	}
	if _, err := PromotableModel(ctx, p.cfg, s.Challenger, c.S3); err != nil {
		return nil, fmt.Errorf("pipeline: scorer %s: promotion: %w", s.Name, err)
	}
	by := "streamscore auto-promotion"
	if o.WorkerID != "" {
		by += " on " + o.WorkerID
	}
	return &promoter{
		pipeline: p.cfg.Pipeline, scorer: s.Name, policy: pc.Policy(), auto: pc.Auto, store: store, sw: sw,
		configured: conf, configuredSrc: configured, load: load, registered: registered,
		configuredChallenger: func(ctx context.Context) (promotion.Model, error) {
			return PromotableModel(ctx, p.cfg, s.Challenger, c.S3)
		},
		keep: func(ctx context.Context, m promotion.Model) (promotion.Model, error) {
			return keepPromoted(ctx, c.S3, m)
		},
		log: p.log.With("scorer", s.Name), by: by, alert: func(sinks.Alert) {}, announce: p.retrain.decided,
	}, nil
}

// follow starts a promoter's follower: it reads the challenger
// registration and the decision once now, so a worker that starts after a
// registration or a promotion scores with them from its first batch, and
// then every interval until ctx ends.
func (pr *promoter) follow(ctx context.Context) (*promotion.Follower, error) {
	f, err := promotion.NewFollower(followSource{pr}, promotion.FollowerConfig{OnChange: pr.apply, Logger: pr.log})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	f.Poll(rctx)
	return f, nil
}

// watchDecided loads a decided champion as the scorer's models are loaded:
// watched (a later write to its path is refused unless its digest is the
// decided one), checked against the window, over the limits its config
// entry sets when the config still names it.
func (p *Pipeline) watchDecided(ctx context.Context, m promotion.Model, s config.Scorer, wp *windowPlan, c Clients,
	scm *scorer.Metrics, alerts func() *sinks.Alerts) (*scorer.Watcher, error) {
	var opts []scorer.LoadOption
	interval := time.Duration(0) // the watcher's default
	if mc := p.cfg.Models[m.Key]; mc != nil {
		opts = append(opts, scorer.WithLimits(scorer.ModelLimits(mc.Limits)), scorer.WithKind(mc.Format))
		interval = mc.ReloadInterval.D()
	}
	if m.SHA256 != "" {
		opts = append(opts, scorer.WithSHA256(m.SHA256))
	}
	return scorer.WatchModel(ctx, m.Path, scorer.WatchOptions{
		Interval: interval, S3: c.S3, Logger: p.log, Metrics: scm, Load: opts, Name: m.Key,
		Check: func(mod *scorer.Model) error { return scorer.CheckSchema(wp.schema, mod.Features()) },
		OnReloadRejected: func(name string, err error) {
			p.modelRejected(s.Name, wp.stream, name, err, alerts())
		},
	})
}

// keepPromoted copies a model to <its directory>/promoted/<digest>/<its
// name>, beside it (S3 or a local directory), after checking its bytes
// are the ones verified, and returns it at that path.
func keepPromoted(ctx context.Context, c S3API, m promotion.Model) (promotion.Model, error) {
	var body []byte
	var err error
	bucket, key, isS3 := strings.Cut(strings.TrimPrefix(m.Path, "s3://"), "/")
	isS3 = isS3 && strings.HasPrefix(m.Path, "s3://")
	if isS3 {
		var out *s3.GetObjectOutput
		if out, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key}); err == nil {
			body, err = io.ReadAll(out.Body)
			out.Body.Close()
		}
	} else {
		body, err = os.ReadFile(m.Path)
	}
	if err != nil {
		return m, fmt.Errorf("reading %s to keep it: %w", m.Path, err)
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != m.SHA256 {
		return m, fmt.Errorf("%s changed since it was verified (sha256 %s, verified %s): not promoted", m.Path, got, m.SHA256)
	}
	dir, name := path.Split(key)
	if !isS3 {
		dir, name = filepath.Split(m.Path)
	}
	kept := dir + "promoted/" + m.SHA256[:16] + "/" + name
	if isS3 {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &kept, Body: bytes.NewReader(body)}); err != nil {
			return m, fmt.Errorf("keeping %s: %w", m.Path, err)
		}
		m.Path = "s3://" + bucket + "/" + kept
		return m, nil
	}
	kept = filepath.FromSlash(kept)
	if err := os.MkdirAll(filepath.Dir(kept), 0o755); err != nil {
		return m, fmt.Errorf("keeping %s: %w", m.Path, err)
	}
	if err := os.WriteFile(kept, body, 0o644); err != nil {
		return m, fmt.Errorf("keeping %s: %w", m.Path, err)
	}
	m.Path = kept
	return m, nil
}
