package pipeline

// The registered challenger: in AWS, the CDK app's retraining state
// machine registers a trained model as an item of its own in the scorer's
// decision table (promotion/dynamo, Store.Challenger), not at the
// configured challenger's path. Every worker reads that item in its
// promotion follower's loop, beside the decision (one more GetItem per
// poll), and points the challenger's scorer.Switch at the registered
// model, so the model trained is the one scored in shadow and judged.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// modelRole is what a scorer's embedded model is to it; with a promotion
// the champion and the challenger are scored through switches.
type modelRole int

const (
	roleFallback modelRole = iota
	roleChampion
	roleChallenger
)

// registeredLoadTimeout bounds loading one registered model, so a stalled
// S3 read cannot hold the follower (and with it the champion's decision)
// for longer.
const registeredLoadTimeout = 2 * time.Minute

// maxRefusedBackoff is the most polls a refused registration waits before
// it is tried again (about 5 minutes at the follower's 10 s): a transient
// S3 failure heals without a new registration, while a model that will
// never load costs one read per worker every few minutes, not every poll.
const maxRefusedBackoff = 32

// registrationSource is where the registration is read: a *dynamo.Store.
type registrationSource interface {
	Challenger(ctx context.Context) (dynamo.Registration, bool, error)
}

// registeredChallenger follows one scorer's challenger registration. Only
// the follower's goroutine polls; the reducer's promotion reads what is
// loaded, under mu.
type registeredChallenger struct {
	// key is the configured challenger's model key; configuredPath and
	// configured its path and source, scored while nothing else is
	// registered.
	key, configuredPath string
	configured          scorer.ModelSource
	sw                  *scorer.Switch
	// load loads and checks a registered model; refused reports a refusal
	// (log, count, alert) once per registration.
	load    func(ctx context.Context, path string) (*scorer.Model, error)
	refused func(r dynamo.Registration, err error)
	loaded  prometheus.Counter
	log     *slog.Logger

	mu    sync.Mutex
	path  string        // the registration scored; "" for the configured model
	model *scorer.Model // its model

	// A refused registration (path and count) is retried after wait polls,
	// the wait doubling up to maxRefusedBackoff.
	refusedKey    string
	backoff, wait int
}

// newRegisteredChallenger wires the registration of scorer s's challenger
// to its switch; configured is the configured challenger's source.
func (p *Pipeline) newRegisteredChallenger(s config.Scorer, wp *windowPlan, sw *scorer.Switch, configured scorer.ModelSource,
	c Clients, o Options, alerts func() *sinks.Alerts) (*registeredChallenger, error) {
	mc := p.cfg.Models[s.Challenger]
	counts := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "streamscore", Subsystem: "pipeline", Name: "challenger_registrations_total",
		Help: "Challenger registrations of the retraining state machine a worker loaded (loaded) or refused (refused, once per registration; the running challenger kept scoring)."},
		[]string{"scorer", "outcome"})
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": p.cfg.Pipeline}, o.Registerer)
	if err := reg.Register(counts); err != nil {
		// Another promoted scorer of the pipeline registered it first.
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("pipeline: scorer %s: metrics: %w", s.Name, err)
		}
		counts = are.ExistingCollector.(*prometheus.CounterVec)
	}
	refusedCount := counts.WithLabelValues(s.Name, "refused")
	return &registeredChallenger{
		key: s.Challenger, configuredPath: mc.Path, configured: configured, sw: sw,
		load: func(ctx context.Context, path string) (*scorer.Model, error) {
			return loadRegistered(ctx, path, mc, wp, c)
		},
		refused: func(r dynamo.Registration, err error) {
			refusedCount.Inc()
			p.modelRejected(s.Name, wp.stream, s.Challenger, fmt.Errorf("registered challenger %s (training job %s, request %s): %w",
				r.Path, r.TrainingJob, r.RequestID, err), alerts())
		},
		loaded: counts.WithLabelValues(s.Name, "loaded"),
		log:    p.log.With("scorer", s.Name),
	}, nil
}

// loadRegistered loads a registered model as the configured challenger
// is loaded, with its limits and format, but no sha256 or version pin
// (the registration carries none), and checks it against the window.
// The object is read once: a training job's output is never rewritten,
// and a new model is a new registration.
func loadRegistered(ctx context.Context, path string, mc *config.Model, wp *windowPlan, c Clients) (*scorer.Model, error) {
	ctx, cancel := context.WithTimeout(ctx, registeredLoadTimeout)
	defer cancel()
	mod, err := scorer.LoadModel(ctx, path, c.S3, scorer.WithLimits(scorer.ModelLimits(mc.Limits)), scorer.WithKind(mc.Format))
	if err != nil {
		return nil, err
	}
	if err := scorer.CheckSchema(wp.schema, mod.Features()); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return mod, nil
}

// poll reads the registration and makes the challenger scored follow it:
// a registration whose path differs from the one scored is loaded and
// switched in; none (or the configured path) brings the configured
// challenger back. A read failure or a refused model keeps the challenger
// scoring.
func (rc *registeredChallenger) poll(ctx context.Context, src registrationSource) {
	if rc == nil {
		return
	}
	r, ok, err := src.Challenger(ctx)
	if err != nil {
		if ctx.Err() == nil {
			rc.log.Warn("promotion: cannot read the challenger registration; the current challenger keeps scoring", "err", err)
		}
		return
	}
	rc.mu.Lock()
	cur := rc.path
	rc.mu.Unlock()
	if !ok || r.Path == rc.configuredPath {
		if cur != "" {
			rc.set("", nil)
			rc.log.Info("promotion: no challenger registered beyond the configured one; scoring it", "model", rc.key, "path", rc.configuredPath)
		}
		return
	}
	if r.Path == cur {
		return
	}
	key := fmt.Sprintf("%s#%d", r.Path, r.Registrations)
	if key == rc.refusedKey && rc.wait > 0 {
		rc.wait--
		return
	}
	mod, err := rc.load(ctx, r.Path)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not the model's fault
		}
		if key != rc.refusedKey {
			rc.refusedKey, rc.backoff = key, 1
			rc.refused(r, err)
		} else {
			rc.backoff = min(2*rc.backoff, maxRefusedBackoff)
			rc.log.Warn("promotion: registered challenger still refused", "path", r.Path, "retry_in_polls", rc.backoff, "err", err)
		}
		rc.wait = rc.backoff
		return
	}
	rc.refusedKey = ""
	rc.set(r.Path, mod)
	rc.loaded.Inc()
	inf := mod.Info()
	rc.log.Info("promotion: registered challenger loaded", "path", r.Path, "version", inf.Version, "sha256", inf.SHA256,
		"training_job", r.TrainingJob, "request_id", r.RequestID, "registered_at", r.RegisteredAt, "registrations", r.Registrations)
}

func (rc *registeredChallenger) set(path string, mod *scorer.Model) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.path, rc.model = path, mod
	if mod == nil {
		rc.sw.Set(rc.configured)
		return
	}
	rc.sw.Set(mod)
}

// promotable is the registered challenger as a decision records it: the
// path and digest loaded. ok is false while the configured one is scored.
func (rc *registeredChallenger) promotable() (m promotion.Model, ok bool) {
	if rc == nil {
		return m, false
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.model == nil {
		return m, false
	}
	inf := rc.model.Info()
	return promotion.Model{Key: rc.key, Path: rc.path, Version: inf.Version, SHA256: inf.SHA256}, true
}

// followSource is what a promoter's follower reads: the registration,
// then the decision, in one poll.
type followSource struct{ pr *promoter }

// Current polls the challenger registration (its failures are logged, not
// returned: they must not hold the champion's decision back) and reads
// the decision.
func (f followSource) Current(ctx context.Context) (promotion.Decision, error) {
	f.pr.registered.poll(ctx, f.pr.store)
	return f.pr.store.Current(ctx)
}
