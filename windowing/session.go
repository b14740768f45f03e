package windowing

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// Session windows: every event opens the window [t, t+gap); windows of a
// key that overlap merge. A session is one pane, so its state is the same
// compact run of words as a pane of a tumbling window.

func (o *Operator) sessionEnd(h int32) int64 {
	return bitsT(o.paneWords(h)[wLastT]) + o.gap
}

func (o *Operator) sessionStart(h int32) int64 {
	return bitsT(o.paneWords(h)[wFirstT])
}

// sessionEvent handles one event of a session window. It returns the
// event's key, or none when the event was handed back.
func (o *Operator) sessionEvent(ent *array.String, i int, t int64, off uint64) int32 {
	name := ent.Value(i)
	lateAlone := t+o.gap+o.lateness <= o.wm
	id, exists := o.keyIdx[name]
	if !exists {
		if lateAlone {
			o.handBack(i, t, off)
			return none
		}
		id = o.lookupKey(name)
	}
	k := &o.keys[id]
	// Walk from the newest session back; sessions are disjoint and sorted,
	// so once one ends at or before t, all older ones do too.
	target := int32(none)
	for h := k.newest; h != none; {
		older := o.panes[h].older
		end := o.sessionEnd(h)
		start := o.sessionStart(h)
		if end <= t {
			break
		}
		if start < t+o.gap { // overlaps [t, t+gap)
			if target != none {
				o.mergeSessions(h, target)
			}
			target = h
		}
		h = older
	}
	if target == none {
		if lateAlone {
			o.handBack(i, t, off)
			return none
		}
		if exists {
			o.touch(id)
		}
		target = o.allocPane(id)
		prev := o.keys[id].newest
		for prev != none && o.sessionStart(prev) > t {
			prev = o.panes[prev].older
		}
		o.linkAfter(id, prev, target)
	} else if exists {
		o.touch(id)
	}
	o.addRow(target, i, t, off)
	o.stats.Events++
	o.schedule(target)
	if o.sessionEnd(target) <= o.wm {
		o.stats.LateAccepted++
		o.markDirty(target)
	}
	return id
}

// schedule makes sure session h is looked at when the watermark reaches its
// end (if it was not emitted at that end) or its end plus allowed lateness
// (to discard it). A session has one live heap entry: older entries are
// recognised by heapAt and skipped.
func (o *Operator) schedule(h int32) {
	p := &o.sess[h]
	end := o.sessionEnd(h)
	at := end + o.lateness
	if p.firedEnd != end {
		at = end
	}
	if at < p.heapAt {
		p.heapAt = at
		o.sheap.push(sessEntry{at: at, h: h, gen: o.panes[h].gen})
	}
}

func (o *Operator) markDirty(h int32) {
	if !o.panes[h].dirty {
		o.panes[h].dirty = true
		o.pending = append(o.pending, h)
	}
}

// mergeSessions folds session src into the older session dst and frees src.
func (o *Operator) mergeSessions(dst, src int32) {
	o.lay.mergePane(o.paneWords(dst), o.paneWords(src))
	nh := len(o.lay.hlls)
	for i := range nh {
		s := o.hlls[int(src)*nh+i]
		if s == nil {
			continue
		}
		di := int(dst)*nh + i
		d := &o.hlls[di]
		if *d == nil {
			*d = newHLL()
		}
		_ = (*d).Merge(s)
		// The merged sketch is sized as if it had seen both inputs (an
		// upper bound, capped at the dense size).
		n := uint64(o.hllN[di]) + uint64(o.hllN[int(src)*nh+i])
		n = min(n, math.MaxUint32)
		o.sketchBytes += hllBytes(uint32(n)) - hllBytes(o.hllN[di])
		o.hllN[di] = uint32(n)
	}
	nd := len(o.lay.quants)
	for i := range nd {
		o.sketchBytes += o.qs[int(dst)*nd+i].merge(&o.qs[int(src)*nd+i])
	}
	d, s := &o.panes[dst], &o.panes[src]
	d.minOff, d.maxOff = min(d.minOff, s.minOff), max(d.maxOff, s.maxOff)
	if s.dirty {
		o.markDirty(dst)
	}
	// The merged session has a new end; it is emitted when the watermark
	// passes that end, whatever was emitted for its parts.
	o.sess[dst].firedEnd = math.MinInt64
	o.paneWords(src)[wCount] = 0 // merged, not discarded: not a predecessor
	o.freePane(src)
	o.schedule(dst)
}

func (o *Operator) sessionAdvance() {
	if len(o.sheap) == 0 || o.sheap[0].at > o.wm {
		return
	}
	for len(o.sheap) > 0 && o.sheap[0].at <= o.wm {
		e := o.sheap.pop()
		p, sm := &o.panes[e.h], &o.sess[e.h]
		if !p.live || p.gen != e.gen || sm.heapAt != e.at {
			continue
		}
		sm.heapAt = math.MaxInt64
		end := o.sessionEnd(e.h)
		if sm.firedEnd != end && end <= o.wm {
			o.emitSession(p.key, e.h, false)
			o.sess[e.h].firedEnd = end
		}
		if end+o.lateness <= o.wm {
			o.freePane(e.h)
		} else {
			o.schedule(e.h)
		}
	}
}

func (o *Operator) sessionFlush() {
	for _, h := range o.pending {
		p := &o.panes[h]
		if !p.live || !p.dirty {
			continue
		}
		p.dirty = false
		if end := o.sessionEnd(h); end <= o.wm {
			o.emitSession(p.key, h, true)
			o.sess[h].firedEnd = end
			o.schedule(h)
		}
	}
	o.pending = o.pending[:0]
}

func (o *Operator) emitSession(key int32, h int32, update bool) {
	o.resetAcc()
	o.mergeInto(h)
	// The key's last event before the session: in the older session, or
	// among discarded ones. A late session landing behind sessions already
	// discarded has no known predecessor (null).
	prev := o.keys[key].lastGoneT
	if prev >= o.sessionStart(h) {
		prev = math.MinInt64
	}
	if older := o.panes[h].older; older != none {
		prev = max(prev, bitsT(o.paneWords(older)[wLastT]))
	}
	p := &o.panes[h]
	o.appendRow(key, o.sessionStart(h), o.sessionEnd(h), prev, update, p.minOff, p.maxOff)
}

// sessEntry asks to look at session h (of generation gen) once the
// watermark reaches at.
type sessEntry struct {
	at  int64
	h   int32
	gen uint32
}

// sessHeap is a min-heap on at, typed so that pushing allocates nothing.
type sessHeap []sessEntry

func (s *sessHeap) push(e sessEntry) {
	*s = append(*s, e)
	h := *s
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (s *sessHeap) pop() sessEntry {
	h := *s
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].at < h[l].at {
			m = r
		}
		if h[i].at <= h[m].at {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*s = h
	return top
}
