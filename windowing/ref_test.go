package windowing

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// refModel is the naive reference the operator is checked against: it keeps
// every accepted event and computes each emitted window by looping over all
// of them. Its rules are the operator's documented semantics, written the
// plain way:
//   - the watermark is the largest event time seen minus out-of-orderness,
//     raised event by event;
//   - before the watermark moves, and at the end of every call, windows
//     changed by late events (within allowed lateness) are re-emitted as
//     updates;
//   - when the watermark passes a window's end, the window is emitted for
//     every key with events in it;
//   - an event all of whose windows are past end + allowed lateness is late.
type refModel struct {
	spec      WindowSpec
	size      int64
	slide     int64
	k         int64
	wm, maxT  int64
	events    []refEvent // accepted, in arrival order
	late      []uint64
	emissions []refEmission
	pending   map[refWin]bool // hopping/tumbling: windows to re-emit
	sessions  map[string][]*refSession
	goneT     map[string]int64 // sessions: last event time of discarded sessions
}

type refEvent struct {
	key  string
	t    int64
	off  uint64
	vals map[string]any // nil value: missing
}

type refWin struct {
	key   string
	start int64
	end   int64
}

type refEmission struct {
	win    refWin
	update bool
	feats  []float64 // NaN: null
	offLo  uint64
	offHi  uint64
	evs    int
	qvals  map[string][]float64 // sorted inputs of quantile features
}

type refSession struct {
	evs      []refEvent
	firedEnd int64
	dirty    bool
}

func newRef(w WindowSpec) *refModel {
	r := &refModel{spec: w, wm: math.MinInt64, maxT: math.MinInt64,
		pending: map[refWin]bool{}, sessions: map[string][]*refSession{}, goneT: map[string]int64{}}
	r.size, r.slide = int64(w.Size), int64(w.Slide)
	if w.Kind == Tumbling {
		r.slide = r.size
	}
	if w.Kind != Session {
		r.k = r.size / r.slide
	}
	return r
}

// process runs one call's worth of events.
func (r *refModel) process(evs []refEvent) {
	for _, e := range evs {
		if e.t > r.maxT {
			r.maxT = e.t
			if nw := e.t - int64(r.spec.OutOfOrderness); nw > r.wm {
				r.advance(nw)
			}
		}
		if r.spec.Kind == Session {
			r.sessionEvent(e)
		} else {
			r.paneEvent(e)
		}
	}
	r.flush()
}

// drain is the end of the stream: the watermark jumps to the end of time.
func (r *refModel) drain() {
	r.advance(math.MaxInt64 - int64(r.spec.AllowedLateness) - r.size - int64(r.spec.Gap) - 1)
}

func (r *refModel) paneEvent(e refEvent) {
	j := floorDiv(e.t, r.slide)
	L := int64(r.spec.AllowedLateness)
	if (j+r.k)*r.slide+L <= r.wm {
		r.late = append(r.late, e.off)
		return
	}
	r.events = append(r.events, e)
	for end := j + 1; end <= j+r.k; end++ {
		if end*r.slide <= r.wm && end*r.slide+L > r.wm {
			r.pending[refWin{e.key, (end - r.k) * r.slide, end * r.slide}] = true
		}
	}
}

func (r *refModel) flush() {
	if r.spec.Kind == Session {
		for key, ss := range r.sessions {
			for _, s := range ss {
				if s.dirty {
					s.dirty = false
					if end := r.sessEnd(s); end <= r.wm {
						r.emitSession(key, s, true)
						s.firedEnd = end
					}
				}
			}
		}
		return
	}
	for w := range r.pending {
		r.emitWin(w, true)
	}
	clear(r.pending)
}

func (r *refModel) advance(nw int64) {
	r.flush()
	old := r.wm
	r.wm = nw
	if r.spec.Kind == Session {
		r.sessionAdvance()
		return
	}
	// every (key, window) with events whose end is in (old, nw]
	wins := map[refWin]bool{}
	for _, e := range r.events {
		j := floorDiv(e.t, r.slide)
		for end := j + 1; end <= j+r.k; end++ {
			if end*r.slide > old && end*r.slide <= nw {
				wins[refWin{e.key, (end - r.k) * r.slide, end * r.slide}] = true
			}
		}
	}
	for w := range wins {
		r.emitWin(w, false)
	}
}

func (r *refModel) emitWin(w refWin, update bool) {
	var in []refEvent
	prev := int64(math.MinInt64)
	for _, e := range r.events {
		if e.key != w.key {
			continue
		}
		if e.t >= w.start && e.t < w.end {
			in = append(in, e)
		} else if e.t < w.start && e.t > prev {
			prev = e.t
		}
	}
	if len(in) == 0 {
		return
	}
	r.emit(w, update, in, prev)
}

func (r *refModel) sessEnd(s *refSession) int64 {
	m := int64(math.MinInt64)
	for _, e := range s.evs {
		m = max(m, e.t)
	}
	return m + int64(r.spec.Gap)
}

func (r *refModel) sessStart(s *refSession) int64 {
	m := int64(math.MaxInt64)
	for _, e := range s.evs {
		m = min(m, e.t)
	}
	return m
}

func (r *refModel) sessionEvent(e refEvent) {
	gap, L := int64(r.spec.Gap), int64(r.spec.AllowedLateness)
	var keep, merged []*refSession
	for _, s := range r.sessions[e.key] {
		if r.sessStart(s) < e.t+gap && r.sessEnd(s) > e.t {
			merged = append(merged, s)
		} else {
			keep = append(keep, s)
		}
	}
	if len(merged) == 0 && e.t+gap+L <= r.wm {
		r.late = append(r.late, e.off)
		return
	}
	ns := &refSession{firedEnd: math.MinInt64}
	if len(merged) == 1 {
		ns = merged[0] // unchanged identity: keeps its emission state
	} else {
		for _, s := range merged {
			ns.evs = append(ns.evs, s.evs...)
			ns.dirty = ns.dirty || s.dirty
		}
	}
	ns.evs = append(ns.evs, e)
	if r.sessEnd(ns) <= r.wm {
		ns.dirty = true
	}
	r.sessions[e.key] = append(keep, ns)
}

func (r *refModel) sessionAdvance() {
	L := int64(r.spec.AllowedLateness)
	for key, ss := range r.sessions {
		var keep []*refSession
		for _, s := range ss {
			end := r.sessEnd(s)
			if end <= r.wm && s.firedEnd != end {
				r.emitSession(key, s, false)
				s.firedEnd = end
			}
			if end+L <= r.wm {
				g, ok := r.goneT[key]
				if last := end - int64(r.spec.Gap); !ok || last > g {
					r.goneT[key] = last
				}
				continue
			}
			keep = append(keep, s)
		}
		r.sessions[key] = keep
	}
}

func (r *refModel) emitSession(key string, s *refSession, update bool) {
	start := r.sessStart(s)
	prev := int64(math.MinInt64)
	if g, ok := r.goneT[key]; ok && g < start {
		prev = g
	}
	for _, o := range r.sessions[key] {
		for _, e := range o.evs {
			if e.t < start && e.t > prev {
				prev = e.t
			}
		}
	}
	in := slices.Clone(s.evs)
	// arrival order decides ties; sessions hold events merged out of order
	sort.SliceStable(in, func(i, j int) bool { return in[i].off < in[j].off })
	r.emit(refWin{key, start, r.sessEnd(s)}, update, in, prev)
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, x == x
	case int64:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// emit computes every feature of one window by looping over its events.
func (r *refModel) emit(w refWin, update bool, in []refEvent, prev int64) {
	em := refEmission{win: w, update: update, offLo: math.MaxUint64, evs: len(in)}
	first := in[0].t
	for _, e := range in {
		em.offLo, em.offHi = min(em.offLo, e.off), max(em.offHi, e.off)
		first = min(first, e.t)
	}
	nan := math.NaN()
	for _, f := range r.spec.Features {
		var xs []float64
		var ts []int64
		present := 0
		for _, e := range in {
			v := e.vals[f.Field]
			if v == nil {
				continue
			}
			if x, ok := num(v); ok {
				xs = append(xs, x)
				ts = append(ts, e.t)
				present++
			} else if _, isStr := v.(string); isStr {
				present++
			}
		}
		n := float64(len(xs))
		sum := 0.0
		for _, x := range xs {
			sum += x
		}
		// first: earliest time, earliest arrival; last: latest time, latest arrival
		fi, li := -1, -1
		for i := range xs {
			if fi < 0 || ts[i] < ts[fi] {
				fi = i
			}
			if li < 0 || ts[i] >= ts[li] {
				li = i
			}
		}
		v := nan
		switch f.Agg {
		case AggCount:
			if f.Field == "" {
				v = float64(len(in))
			} else {
				v = float64(present)
			}
		case AggSum:
			if n > 0 {
				v = sum
			}
		case AggMean:
			if n > 0 {
				v = sum / n
			}
		case AggMin:
			if n > 0 {
				v = slices.Min(xs)
			}
		case AggMax:
			if n > 0 {
				v = slices.Max(xs)
			}
		case AggVariance, AggStddev:
			if n > 1 {
				m := sum / n
				ss := 0.0
				for _, x := range xs {
					ss += (x - m) * (x - m)
				}
				v = ss / (n - 1)
				if f.Agg == AggStddev {
					v = math.Sqrt(v)
				}
			}
		case AggFirst:
			if n > 0 {
				v = xs[fi]
			}
		case AggLast:
			if n > 0 {
				v = xs[li]
			}
		case AggDelta:
			if n > 0 {
				v = xs[li] - xs[fi]
			}
		case AggRate:
			if f.Field == "" {
				v = float64(len(in)) / (float64(w.end-w.start) / 1e9)
			} else if n > 0 && ts[li] > ts[fi] {
				v = (xs[li] - xs[fi]) / (float64(ts[li]-ts[fi]) / 1e9)
			}
		case AggCountIf:
			c := 0
			for _, e := range in {
				switch x := e.vals[f.Field].(type) {
				case string:
					if x == f.Equals {
						c++
					}
				case nil:
				default: // int64, bool: as written in the config
					if fmt.Sprint(x) == f.Equals {
						c++
					}
				}
			}
			v = float64(c)
		case AggDistinctCount:
			set := map[any]bool{}
			for _, e := range in {
				if x := e.vals[f.Field]; x != nil {
					set[x] = true
				}
			}
			v = float64(len(set))
		case AggQuantile:
			if n > 0 {
				v = exactQuantile(xs, f.Quantile)
				if em.qvals == nil {
					em.qvals = map[string][]float64{}
				}
				sorted := slices.Clone(xs)
				slices.Sort(sorted)
				em.qvals[f.Name] = sorted
			}
		case AggMissingRatio:
			v = float64(len(in)-present) / float64(len(in))
		case AggSecondsSinceLast:
			if prev != math.MinInt64 {
				v = float64(first-prev) / 1e9
			}
		}
		em.feats = append(em.feats, v)
	}
	r.emissions = append(r.emissions, em)
}

func exactQuantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(math.Min(float64(len(s)-1), math.Floor(q*float64(len(s)))))]
}
