package pipeline

// The retraining trigger's state in S3, so that it survives a change of
// reducer: <monitor prefix>retrain/<pipeline>/trigger.json in
// sinks.s3.bucket (docs/flywheel.md, "After a failover"). The reducer
// writes it after each decision that changed it and a worker reads it
// when it becomes the reducer, before it feeds a verdict.

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/retrain"
)

var _ reducerLead = (*retrainer)(nil)

// The failure steps the state counts, as streamscore_monitor_failures_total
// {window="retrain"}: a file that was no state (the trigger started
// fresh), a read that failed (retried at the next verdict, no write
// until then), a write that failed (retried at the next decision).
const (
	retrainObsWindow   = "retrain"
	stepStateCorrupt   = "trigger_state_corrupt"
	stepStateReadFail  = "trigger_state_read"
	stepStateWriteFail = "trigger_state_write"
)

// triggerStateKey is where, in sinks.s3.bucket, the pipeline's trigger
// state lives.
func triggerStateKey(cfg *config.Config) string {
	_, _, prefix := MonitorTiming(cfg)
	return prefix + "retrain/" + cfg.Pipeline + "/trigger.json"
}

// triggerStore is the trigger state's file and what the retrainer knows
// of it.
type triggerStore struct {
	s3          monitorS3
	bucket, key string
	obs         Observer

	// leads counts the streams' shards at hash key 0 this worker runs
	// (the lead hook); reload is set when it goes from 0 to 1, and the
	// next verdict reads the file first. No write happens while it is
	// set: a worker that could not read the file must not replace it.
	leads  atomic.Int32
	reload atomic.Bool

	// mu orders the writes; seq numbers the states handed to save (under
	// the retrainer's mu) so an older one never overwrites a newer one,
	// and last is the document last written or read.
	mu    sync.Mutex
	seq   uint64
	saved uint64
	last  []byte
}

// lead is the reducer hook: a worker that starts leading reads the
// state before its next verdict.
func (r *retrainer) lead(delta int32) {
	if r.store == nil {
		return
	}
	if n := r.store.leads.Add(delta); delta > 0 && n == delta {
		r.store.reload.Store(true)
	}
}

// attachLead hangs the retrainer on the reducer hooks of the streams
// whose monitors feed it: those of the monitored windows and of the
// scorers under quality monitoring.
func (r *retrainer) attachLead(p *Pipeline) {
	seen := map[string]bool{}
	add := func(window string) {
		wp := p.pl.windows[window]
		if wp == nil || seen[wp.stream] {
			return
		}
		seen[wp.stream] = true
		st := p.pl.streams[wp.stream]
		st.reducers = append(st.reducers, r)
	}
	for _, mw := range p.cfg.Monitor.Windows {
		add(mw.Window)
	}
	for _, q := range p.cfg.Monitor.Quality {
		for _, s := range p.cfg.Scorers {
			if s.Name == q.Scorer {
				add(s.Window)
			}
		}
	}
}

// loadState reads the state when this worker has just become the
// reducer; r.mu is held. A missing file is a fresh state; a file that is
// no state is logged and counted, and the trigger starts fresh; a read
// that fails is logged and counted, and tried again at the next verdict.
func (r *retrainer) loadState(ctx context.Context) {
	s := r.store
	if s == nil || !s.reload.Load() {
		return
	}
	uri := "s3://" + s.bucket + "/" + s.key
	rctx, cancel := context.WithTimeout(ctx, 4*monitorAttempt)
	body, err := dataset.ReadObject(rctx, s.s3, s.bucket, s.key)
	cancel()
	fresh := retrain.State{Version: retrain.StateVersion, Pipeline: r.tr.Config().Pipeline}
	switch {
	case dataset.Absent(err):
		body = nil
		if err := r.tr.Restore(fresh); err != nil {
			r.log.Error("retrain: trigger state not reset", "err", err)
		}
		r.log.Info("retrain: no trigger state yet; the trigger starts fresh", "state", uri)
	case err != nil:
		r.log.Error("retrain: trigger state not read; the next verdict tries again, and the state is not written until then", "state", uri, "err", err)
		s.obs.MonitorFailed(retrainObsWindow, stepStateReadFail)
		return
	default:
		st, err := retrain.DecodeState(body, uri)
		if err == nil {
			err = r.tr.Restore(st)
		}
		if err != nil {
			r.log.Error("retrain: trigger state refused; the trigger starts fresh (runs in progress start over, cooldowns are forgotten)", "state", uri, "err", err)
			s.obs.MonitorFailed(retrainObsWindow, stepStateCorrupt)
			body = nil
			if err := r.tr.Restore(fresh); err != nil {
				r.log.Error("retrain: trigger state not reset", "err", err)
			}
		} else {
			r.log.Info("retrain: trigger state restored", "state", uri, "runs", len(st.Runs), "asked", len(st.Asked))
		}
	}
	s.mu.Lock()
	s.last = body
	s.mu.Unlock()
	s.reload.Store(false)
}

// snapshot numbers the trigger's state after a decision; r.mu is held.
func (r *retrainer) snapshot() (retrain.State, uint64) {
	if r.store == nil {
		return retrain.State{}, 0
	}
	r.store.seq++
	return r.tr.State(), r.store.seq
}

// saveState writes the state numbered seq unless a newer one was written,
// it is what the file holds already, or this worker is not (or not yet
// surely) the reducer. A write that fails is logged and counted; the
// next decision writes again, since the file is then behind.
func (r *retrainer) saveState(ctx context.Context, st retrain.State, seq uint64) {
	s := r.store
	if s == nil || s.reload.Load() || s.leads.Load() <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.saved {
		return
	}
	body, err := retrain.EncodeState(st)
	if err != nil {
		r.log.Error("retrain: trigger state not encoded", "err", err)
		return
	}
	if bytes.Equal(body, s.last) {
		s.saved = seq
		return
	}
	err = withRetry(ctx, func(ctx context.Context) error {
		_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &s.key, Body: bytes.NewReader(body),
			ContentType: aws.String("application/json")})
		return err
	})
	if err != nil {
		r.log.Error("retrain: trigger state not written; the next decision writes it again", "state", "s3://"+s.bucket+"/"+s.key, "err", err)
		s.obs.MonitorFailed(retrainObsWindow, stepStateWriteFail)
		return
	}
	s.saved, s.last = seq, body
}

// newTriggerStore is the state's store, nil (the state lives in memory
// only) without an S3 client or sinks.s3.
func (p *Pipeline) newTriggerStore(c Clients) (*triggerStore, error) {
	if c.S3 == nil || p.cfg.Sinks.S3 == nil {
		return nil, nil
	}
	if p.cfg.Sinks.S3.Bucket == "" {
		return nil, errors.New("pipeline: monitor.retrain: sinks.s3.bucket is empty: the trigger's state has nowhere to go")
	}
	return &triggerStore{s3: c.S3, bucket: p.cfg.Sinks.S3.Bucket, key: triggerStateKey(p.cfg), obs: p.obs}, nil
}
