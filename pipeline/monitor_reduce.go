package pipeline

// The reducer: the worker running the stream's first shard merges the
// fleet's parts of each period and judges them (judgePeriod). It finds the
// periods to judge in S3, from every worker's parts and the verdicts
// already written, never from its own memory of what it wrote. So a worker
// that becomes the reducer (a failover, a rebalance, a lease that expired
// under load) judges what its predecessor left, and a period its own shards
// had no rows for is judged all the same.

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/streamscore/streamscore/monitor/dataset"
)

// progressSnapshot is what the fold goroutine knows at a tick: the event
// time all of this worker's shards have reached, and whether they all went
// silent. fresh marks the first tick of this worker as the reducer.
type progressSnapshot struct {
	hw    time.Time
	quiet bool
	now   time.Time
	fresh bool
}

// reducer is the reducer's view of the fleet's periods, owned by the S3
// goroutine.
type reducer struct {
	// from is the oldest period still of interest: each listing starts
	// there. Zero lists the whole history (the first listing).
	from time.Time
	// wholeAt is when the whole history was last listed. It is listed
	// again once a period: a period whose first part comes after a later
	// period's verdict moved from past it (a worker far behind, replaying
	// a shard from an old checkpoint after its lease moved) would
	// otherwise never be seen.
	wholeAt time.Time
	periods map[int64]*fleetPeriod // by period start, Unix ns
}

// fleetPeriod is a period with parts in S3.
type fleetPeriod struct {
	parts  int       // parts found by the last listing
	seen   time.Time // when this reducer first found it
	done   bool      // a verdict exists, written here or before
	judged int       // parts merged by this reducer's last verdict
	until  time.Time // late parts are looked for until then
	warned bool      // logged as waiting on this worker's progress
}

// reduce queues a reducer pass with the latest progress. Passes coalesce:
// while one waits behind slow S3 jobs, a newer tick only updates its
// snapshot.
func (w *monitorIO) reduce(s progressSnapshot) {
	w.mu.Lock()
	queued := w.reduceQueued
	if queued {
		s.fresh = s.fresh || w.snap.fresh
	}
	w.snap, w.reduceQueued = s, true
	w.mu.Unlock()
	if queued {
		return
	}
	w.push(func(ctx context.Context) {
		w.mu.Lock()
		s := w.snap
		w.reduceQueued = false
		w.mu.Unlock()
		w.reducePass(ctx, s)
	})
}

// reducePass lists the verdicts and the parts from the oldest period of
// interest on, judges each period that is due and has no verdict, and
// judges a period again when parts came after its verdict.
func (w *monitorIO) reducePass(ctx context.Context, s progressSnapshot) {
	m, st, r := w.m, w.m.c.store, &w.red
	if s.fresh || r.periods == nil {
		*r = reducer{periods: map[int64]*fleetPeriod{}}
	}
	verdicts := map[int64]bool{}
	parts := map[int64]int{}
	partsPrefix := st.prefix + "parts/"
	whole := r.from.IsZero() || m.c.now().Sub(r.wholeAt) >= m.c.period
	after := func(dir string) string {
		if whole {
			return ""
		}
		return strings.TrimSuffix(dir, "/")
	}
	err := st.listAfter(ctx, st.prefix, after(st.dir(r.from)), func(k string) bool {
		if strings.HasPrefix(k, partsPrefix) {
			return false // the verdicts sort before the parts' subtree
		}
		if p, rest, ok := st.periodOf(strings.TrimPrefix(k, st.prefix)); ok && rest == dataset.StatisticsFile {
			verdicts[p] = true
		}
		return true
	})
	if err == nil {
		err = st.listAfter(ctx, partsPrefix, after(st.partsDir(r.from)), func(k string) bool {
			if p, rest, ok := st.periodOf(strings.TrimPrefix(k, partsPrefix)); ok && rest != "" {
				parts[p]++
			}
			return true
		})
	}
	if err != nil {
		m.c.log.Error("monitor: periods not listed", "window", m.c.window, "err", err)
		m.c.obs.MonitorFailed(m.c.window, "list")
		return
	}
	now := m.c.now()
	if whole {
		r.wholeAt = now
	}
	for p, n := range parts {
		fp := r.periods[p]
		if fp == nil {
			fp = &fleetPeriod{seen: now}
			r.periods[p] = fp
		}
		fp.parts = n
		fp.done = fp.done || verdicts[p]
	}
	order := make([]int64, 0, len(r.periods))
	for p := range r.periods {
		order = append(order, p)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	for _, p := range order {
		fp, start := r.periods[p], time.Unix(0, p).UTC()
		switch {
		case !fp.done && w.due(start, fp, s, now):
			n, err := m.judgePeriod(ctx, start, false)
			if err != nil {
				m.c.log.Error("monitor: period not judged", "window", m.c.window, "period", start.Format(time.RFC3339), "err", err)
				m.c.obs.MonitorFailed(m.c.window, "judge")
				continue // the next pass tries again
			}
			fp.done = true
			if n > 0 {
				// A worker behind this one writes its part after the
				// verdict: for a while, more parts mean a new verdict.
				fp.judged, fp.until = n, now.Add(m.c.period+m.c.grace+2*m.c.settle)
			}
		case fp.done && fp.judged > 0 && fp.parts > fp.judged && now.Before(fp.until):
			n, err := m.judgePeriod(ctx, start, true)
			if err != nil {
				m.c.log.Error("monitor: period not judged again", "window", m.c.window, "period", start.Format(time.RFC3339), "err", err)
				m.c.obs.MonitorFailed(m.c.window, "judge")
				continue
			}
			fp.judged = max(fp.judged, n)
		case !fp.done && !fp.warned && now.Sub(fp.seen) >= m.c.period+m.c.grace+m.c.settle:
			// Its parts have had the time the verdict waits for, but this
			// worker's shards have not passed its end: they are far behind
			// the fleet, or their results stopped behind it. Said once.
			fp.warned = true
			m.c.log.Warn("monitor: a period with parts waits for this worker's progress", "window", m.c.window,
				"period", start.Format(time.RFC3339), "parts", fp.parts, "found", now.Sub(fp.seen).Round(time.Second),
				"progress", s.hw.Format(time.RFC3339Nano), "quiet", s.quiet)
		}
	}
	// The next listing starts at the oldest period still of interest, or
	// at the newest one seen when none is.
	var oldest time.Time
	for _, p := range order {
		fp := r.periods[p]
		if fp.done && !(fp.judged > 0 && now.Before(fp.until)) {
			delete(r.periods, p)
			continue
		}
		if oldest.IsZero() {
			oldest = time.Unix(0, p).UTC()
		}
	}
	switch {
	case !oldest.IsZero():
		r.from = oldest
	case len(order) > 0:
		r.from = time.Unix(0, order[len(order)-1]).UTC()
	}
}

// due reports whether a period's parts have had time to arrive: this
// worker's own progress passed its end, the window's lateness and the
// settle time; or its shards all went silent that long after the end; or,
// with no progress of its own (its shards had no rows yet), the period was
// found a period and that long ago.
func (w *monitorIO) due(start time.Time, fp *fleetPeriod, s progressSnapshot, now time.Time) bool {
	c := w.m.c
	end, wait := start.Add(c.period), c.grace+c.settle
	switch {
	case !s.hw.IsZero():
		return !s.hw.Before(end.Add(wait)) || s.quiet && s.now.Sub(end) >= wait
	default:
		return now.Sub(fp.seen) >= c.period+wait
	}
}

// periodOf parses the period at the start of a key relative to the
// window's directory (or its parts' directory), returning the period start
// and the rest of the key. Keys of another layout (a period changed in the
// config, a foreign object) are not this monitor's.
func (s *partStore) periodOf(rel string) (int64, string, bool) {
	layout := s.periodPath(time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC))
	if len(rel) < len(layout) {
		return 0, "", false
	}
	t, err := time.Parse(layout, rel[:len(layout)])
	if err != nil {
		return 0, "", false
	}
	p := t.UnixNano()
	if p%s.period.Nanoseconds() != 0 {
		return 0, "", false
	}
	return p, rel[len(layout):], true
}
