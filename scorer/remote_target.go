package scorer

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/sony/gobreaker/v2"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

// Targets: the model a request goes to on a multi-model endpoint
// (TargetModel), each with its own circuit breaker, so one model that fails
// to load or answer falls back alone while the endpoint's other models go
// on scoring.

// DefaultMaxTargets bounds the target models a Remote keeps a breaker for
// unless configured.
const DefaultMaxTargets = 64

// maxRouteKeys bounds the cache of column values already mapped to a
// target model; past it the cache starts over.
const maxRouteKeys = 4096

// router maps each row to its target model from a column's value.
type router struct {
	column    string
	delimiter []byte
	segment   int
	models    map[string]string
	prefix    []string // the template split at its placeholders
	mu        sync.RWMutex
	cache     map[string]route // column value (key) -> target model
}

type route struct {
	name string
	err  error
}

// key returns the routing key of row i of col (the value, or its
// segment), appending to buf; false for a null.
func (rt *router) key(col arrow.Array, i int, buf []byte) ([]byte, bool, error) {
	if col.IsNull(i) {
		return nil, false, nil
	}
	var k []byte
	switch a := col.(type) {
	case *array.String:
		off := a.ValueOffsets()
		k = a.ValueBytes()[off[i]-off[0] : off[i+1]-off[0]]
	case *array.Binary:
		k = a.Value(i)
	case *array.Int64:
		k = strconv.AppendInt(buf[:0], a.Value(i), 10)
	case *array.Int32:
		k = strconv.AppendInt(buf[:0], int64(a.Value(i)), 10)
	case *array.Float64:
		v := a.Value(i)
		switch {
		case math.IsNaN(v):
			return nil, false, nil
		case v == math.Trunc(v) && math.Abs(v) < 1<<53:
			// A category code aggregated as a float: 3.0 routes as "3".
			k = strconv.AppendInt(buf[:0], int64(v), 10)
		default:
			k = strconv.AppendFloat(buf[:0], v, 'g', -1, 64)
		}
	default:
		return nil, false, fmt.Errorf("target_model_from column %q has type %s, want string, binary, int64, int32 or float64", rt.column, col.DataType())
	}
	if len(rt.delimiter) == 0 {
		return k, true, nil
	}
	for n := 0; ; n++ {
		i := bytes.Index(k, rt.delimiter)
		if n == rt.segment {
			if i >= 0 {
				k = k[:i]
			}
			return k, true, nil
		}
		if i < 0 {
			return k, false, nil
		}
		k = k[i+len(rt.delimiter):]
	}
}

// resolve names the target model of a key.
func (rt *router) resolve(key string) route {
	if m, ok := rt.models[key]; ok {
		return route{name: m}
	}
	if rt.prefix == nil {
		return route{err: fmt.Errorf("no target model for %s value %q: it is not a key of target_models and there is no target_model_template", rt.column, clipString(key))}
	}
	name := strings.Join(rt.prefix, key)
	if err := remotespec.CheckTargetModel(name); err != nil {
		return route{err: fmt.Errorf("%s value %q: %w", rt.column, clipString(key), err)}
	}
	return route{name: name}
}

// target is one target model (or the endpoint itself) with its breaker and
// the state the cold-start allowance reads.
type target struct {
	name  string  // TargetModel sent; "" for none
	label string  // the breaker's name: endpoint, or endpoint@model
	model *string // name for the request, built once
	cb    *gobreaker.CircuitBreaker[[]byte]

	timeouts      atomic.Uint32 // consecutive timeouts
	lastErr       atomic.Pointer[errBox]
	lastOK        atomic.Int64 // unix ns of the last answer; 0: none yet
	lastUsed      atomic.Int64 // unix ns a batch last routed rows here
	coldSpent     atomic.Bool  // a cold call timed out even so
	notReadySince atomic.Int64 // unix ns of the first ModelNotReady since an answer
}

// cold reports whether the next call gets the cold-start allowance: the
// target never answered, or not for idle, and no call since has used the
// allowance up by timing out anyway.
func (t *target) cold(now int64, idle time.Duration) bool {
	if t.coldSpent.Load() {
		return false
	}
	last := t.lastOK.Load()
	return last == 0 || now-last > int64(idle)
}

// notReadyFinal records a ModelNotReady answer and reports whether it is
// past the allowance: from the first one since the last answer, a target
// may stay not ready for the cold-start timeout without it counting
// against the breaker.
func (t *target) notReadyFinal(now int64, allowance time.Duration) bool {
	t.notReadySince.CompareAndSwap(0, now)
	return allowance <= 0 || now-t.notReadySince.Load() >= int64(allowance)
}

func (t *target) answered(now int64) {
	t.timeouts.Store(0)
	t.lastOK.Store(now)
	t.coldSpent.Store(false)
	t.notReadySince.Store(0)
}

// newTarget builds a target and its breaker.
func (r *Remote) newTarget(name string) *target {
	t := &target{name: name, label: r.cfg.Endpoint}
	if name != "" {
		t.label += "@" + name
		t.model = &t.name
	}
	b := r.cfg.Breaker
	t.cb = gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
		Name:         t.label,
		MaxRequests:  b.HalfOpenProbes,
		Interval:     b.Interval,
		BucketPeriod: b.Interval / 6,
		Timeout:      b.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= b.ConsecutiveFailures ||
				(c.Requests >= b.MinRequests && float64(c.TotalFailures) >= b.FailureRatio*float64(c.Requests)) ||
				t.timeouts.Load() >= b.ConsecutiveTimeouts
		},
		IsExcluded:    excluded,
		OnStateChange: func(_ string, from, to gobreaker.State) { r.onStateChange(t, from, to) },
	})
	r.cfg.Metrics.breaker(t.label, 0, "closed")
	return t
}

// targets holds the breakers of per-row target models, at most max of
// them: a new one evicts the least recently used closed one (or, when all
// are open or half-open, the least recently used), so a stream of model
// names cannot grow memory or metric series without bound. An evicted
// target starts over, closed, when rows route to it again; evicting one
// that was not closed is reported to OnBreakerChange (Evicted), so an
// open alert does not stay open for ever.
type targets struct {
	mu  sync.Mutex
	m   map[string]*target
	max int
}

// get returns the target named name, creating it (and evicting one) if
// needed.
func (r *Remote) get(name string, now int64) *target {
	t, gone := r.getLocked(name, now)
	if gone != nil && r.cfg.OnBreakerChange != nil {
		r.cfg.OnBreakerChange(*gone)
	}
	return t
}

// getLocked is get under the targets' lock; it returns the event of an
// evicted breaker that was not closed, for get to report after unlocking.
func (r *Remote) getLocked(name string, now int64) (*target, *BreakerEvent) {
	ts := &r.targets
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.m[name]; t != nil {
		t.lastUsed.Store(now)
		return t, nil
	}
	var gone *BreakerEvent
	if len(ts.m) >= ts.max {
		var victim *target
		for _, t := range ts.m {
			if victim == nil || (t.cb.State() == gobreaker.StateClosed) != (victim.cb.State() == gobreaker.StateClosed) {
				if victim == nil || t.cb.State() == gobreaker.StateClosed {
					victim = t
				}
				continue
			}
			if t.lastUsed.Load() < victim.lastUsed.Load() {
				victim = t
			}
		}
		delete(ts.m, victim.name)
		r.log.Info("sagemaker target model breaker evicted: more target models than max_targets",
			"endpoint", r.cfg.Endpoint, "target_model", victim.name, "state", victim.cb.State().String(), "max_targets", ts.max)
		r.cfg.Metrics.forget(victim.label)
		if s := victim.cb.State(); s != gobreaker.StateClosed {
			gone = &BreakerEvent{Endpoint: victim.label, Target: victim.name, From: s, To: gobreaker.StateClosed,
				At: time.Now(), Evicted: true}
		}
	}
	t := r.newTarget(name)
	t.lastUsed.Store(now)
	ts.m[name] = t
	return t, gone
}

// group is the rows of one batch bound for one target: order[lo:hi].
type group struct {
	t      *target
	lo, hi int
}

// route groups the batch's rows by target into sc.order and sc.groups.
// Rows whose target cannot be told are left out (they are unscored, and
// the error says why); an error returned concerns the whole batch.
func (r *Remote) route(rec arrow.RecordBatch, n int, sc *remoteScratch) (rowErr, err error) {
	now := time.Now().UnixNano()
	sc.order = grow(sc.order, n)
	sc.groups = sc.groups[:0]
	rt := r.router
	if rt == nil {
		r.fixed.lastUsed.Store(now)
		for i := range n {
			sc.order[i] = int32(i)
		}
		sc.groups = append(sc.groups, group{t: r.fixed, lo: 0, hi: n})
		return nil, nil
	}
	idx := rec.Schema().FieldIndices(rt.column)
	if len(idx) != 1 {
		return nil, fmt.Errorf("remote scorer %s: batch has no single %q column (target_model_from)", r.cfg.Endpoint, rt.column)
	}
	col := rec.Column(idx[0])
	sc.tid = grow(sc.tid, n)
	clear(sc.gid)
	sc.misses = sc.misses[:0]
	assign := func(i int, ro route) {
		if ro.err != nil {
			sc.tid[i] = -1
			if rowErr == nil {
				rowErr = fmt.Errorf("endpoint %s: row %d: %w", r.cfg.Endpoint, i, ro.err)
			}
			return
		}
		g, ok := sc.gid[ro.name]
		if !ok {
			g = int32(len(sc.groups))
			sc.gid[ro.name] = g
			sc.groups = append(sc.groups, group{t: r.get(ro.name, now)})
		}
		sc.tid[i] = g
	}
	rt.mu.RLock()
	for i := range n {
		k, ok, kerr := rt.key(col, i, sc.keyBuf[:0])
		if kerr != nil {
			rt.mu.RUnlock()
			return nil, fmt.Errorf("remote scorer %s: %w", r.cfg.Endpoint, kerr)
		}
		if !ok {
			assign(i, route{err: fmt.Errorf("%s is null or has no segment %d", rt.column, rt.segment)})
			continue
		}
		if ro, hit := rt.cache[string(k)]; hit {
			assign(i, ro)
		} else {
			sc.misses = append(sc.misses, int32(i))
		}
	}
	rt.mu.RUnlock()
	if len(sc.misses) > 0 {
		rt.mu.Lock()
		for _, i := range sc.misses {
			k, _, _ := rt.key(col, int(i), sc.keyBuf[:0])
			ro, hit := rt.cache[string(k)]
			if !hit {
				if len(rt.cache) >= maxRouteKeys {
					clear(rt.cache)
				}
				ro = rt.resolve(string(k))
				rt.cache[string(k)] = ro
			}
			assign(int(i), ro)
		}
		rt.mu.Unlock()
	}
	// Counting sort by group, keeping each group's rows in batch order.
	for g := range sc.groups {
		sc.groups[g].lo, sc.groups[g].hi = 0, 0
	}
	for i := range n {
		if g := sc.tid[i]; g >= 0 {
			sc.groups[g].hi++
		}
	}
	at := 0
	for g := range sc.groups {
		c := sc.groups[g].hi
		sc.groups[g].lo, sc.groups[g].hi = at, at
		at += c
	}
	sc.order = sc.order[:at]
	for i := range n {
		if g := sc.tid[i]; g >= 0 {
			sc.order[sc.groups[g].hi] = int32(i)
			sc.groups[g].hi++
		}
	}
	return rowErr, nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}
