package windowing

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"math"
	"slices"
)

// Tumbling and hopping windows: panes of one slide each; and the feature
// rows all window kinds emit.

// paneEvent handles one event of a tumbling or hopping window.
// It returns the event's key, or none when the event was handed back.
func (o *Operator) paneEvent(ent *array.String, i int, t int64, off uint64) int32 {
	j := floorDiv(t, o.slide)
	// The last window holding pane j ends at (j+k)*slide.
	if (j+o.k)*o.slide+o.lateness <= o.wm {
		o.handBack(i, t, off)
		return none
	}
	key := o.lookupKey(ent.Value(i))
	k := &o.keys[key]
	h := k.newest
	for h != none && o.panes[h].idx > j {
		h = o.panes[h].older
	}
	if h == none || o.panes[h].idx != j {
		nh := o.allocPane(key)
		o.panes[nh].idx = j
		o.linkAfter(key, h, nh)
		s := o.slot(j)
		if s.idx != j || len(s.handles) == 0 {
			s.idx, s.minOff = j, math.MaxUint64
			s.handles = s.handles[:0]
		}
		o.panes[nh].pos = int32(len(s.handles))
		s.handles = append(s.handles, nh)
		if !o.haveRange {
			o.lo, o.hi, o.haveRange = j, j, true
		}
		o.lo, o.hi = min(o.lo, j), max(o.hi, j)
		h = nh
	}
	s := o.slot(j)
	s.minOff = min(s.minOff, off)
	o.addRow(h, i, t, off)
	o.stats.Events++
	// Windows holding pane j end at (j+1)*slide .. (j+k)*slide: if the
	// first has fired, the event is late (within lateness) and those
	// windows are re-emitted.
	if (j+1)*o.slide <= o.wm {
		o.stats.LateAccepted++
		if !o.panes[h].dirty {
			o.panes[h].dirty = true
			o.pending = append(o.pending, h)
		}
	}
	return key
}

func (o *Operator) handBack(i int, t int64, off uint64) {
	o.stats.LateDropped++
	o.late = append(o.late, LateEvent{Row: i, Offset: off, EventTime: nsTime(t), Watermark: nsTime(o.wm)})
}

// advance raises the watermark to wm, emitting the windows it passes and
// discarding the panes past allowed lateness.
func (o *Operator) advance(wm int64) {
	if wm <= o.wm {
		return
	}
	// Updates pending from late events are emitted before the watermark
	// moves, so that what they hold does not depend on batching.
	o.flushUpdates()
	old := o.wm
	o.wm = wm
	if o.session {
		o.sessionAdvance()
		return
	}
	if !o.haveRange {
		return
	}
	// Window end indices e fire when e*slide <= wm.
	from := max(floorDiv(old, o.slide)+1, o.lo+1)
	if old == math.MinInt64 {
		from = o.lo + 1
	}
	to := min(floorDiv(wm, o.slide), o.hi+o.k)
	for e := from; e <= to; e++ {
		o.fire(e)
	}
	for o.lo <= o.hi && (o.lo+o.k)*o.slide+o.lateness <= wm {
		s := o.slot(o.lo)
		if s.idx == o.lo {
			for len(s.handles) > 0 {
				o.freePane(s.handles[len(s.handles)-1])
			}
		}
		o.lo++
	}
	if o.lo > o.hi {
		o.haveRange = false
	}
}

// fire emits window e (panes e-k .. e-1) for every key with data in it.
func (o *Operator) fire(e int64) {
	for j := e - o.k; j < e; j++ {
		s := o.slot(j)
		if s.idx != j {
			continue
		}
		for _, h := range s.handles {
			key := o.panes[h].key
			if o.keys[key].lastFired == e {
				continue
			}
			o.keys[key].lastFired = e
			o.emitWindow(key, e, false)
		}
	}
}

func (o *Operator) keyHasData(key int32, from, to int64) bool {
	for h := o.keys[key].newest; h != none; h = o.panes[h].older {
		if idx := o.panes[h].idx; idx < to {
			return idx >= from
		}
	}
	return false
}

// flushUpdates re-emits, flagged update, every window a late event changed
// since the last flush, once per window.
func (o *Operator) flushUpdates() {
	if len(o.pending) == 0 {
		return
	}
	if o.session {
		o.sessionFlush()
		return
	}
	o.upd = o.upd[:0]
	for _, h := range o.pending {
		p := &o.panes[h]
		if !p.live || !p.dirty {
			continue
		}
		p.dirty = false
		for e := p.idx + 1; e <= p.idx+o.k; e++ {
			end := e * o.slide
			if end <= o.wm && end+o.lateness > o.wm {
				o.upd = append(o.upd, updKey{p.key, e})
			}
		}
	}
	o.pending = o.pending[:0]
	slices.SortFunc(o.upd, func(a, b updKey) int {
		if a.key != b.key {
			return int(a.key - b.key)
		}
		return int(a.end - b.end)
	})
	for i, u := range o.upd {
		if i > 0 && o.upd[i-1] == u {
			continue
		}
		o.emitWindow(u.key, u.end, true)
	}
}

// emitWindow merges the panes of window e of key and appends its row.
func (o *Operator) emitWindow(key int32, e int64, update bool) {
	from, to := e-o.k, e
	o.resetAcc()
	prev := o.keys[key].lastGoneT
	offFirst, offLast := uint64(math.MaxUint64), uint64(0)
	for h := o.keys[key].oldest; h != none; h = o.panes[h].newer {
		p := &o.panes[h]
		if p.idx < from {
			if w := o.paneWords(h); o.lay.times && w[wCount] > 0 {
				prev = max(prev, bitsT(w[wLastT]))
			}
			continue
		}
		if p.idx >= to {
			break
		}
		o.mergeInto(h)
		offFirst, offLast = min(offFirst, p.minOff), max(offLast, p.maxOff)
	}
	if o.acc[wCount] == 0 {
		return
	}
	o.appendRow(key, from*o.slide, to*o.slide, prev, update, offFirst, offLast)
}

func (o *Operator) resetAcc() {
	clear(o.acc)
	for i := range o.accH {
		o.accH[i] = nil
	}
	for i := range o.accQ {
		o.accQ[i].clearKeep()
	}
}

func (o *Operator) mergeInto(h int32) {
	o.lay.mergePane(o.acc, o.paneWords(h))
	nh := len(o.lay.hlls)
	for i := range o.accH {
		src := o.hlls[int(h)*nh+i]
		if src == nil {
			continue
		}
		if o.accH[i] == nil {
			o.accH[i] = newHLL()
		}
		_ = o.accH[i].Merge(src)
	}
	nd := len(o.lay.quants)
	for i := range o.accQ {
		o.accQ[i].gather(&o.qs[int(h)*nd+i])
	}
}

// appendRow computes the features from the accumulator and appends them.
func (o *Operator) appendRow(key int32, start, end, prev int64, update bool, offFirst, offLast uint64) {
	o.outEntity.Append(o.keys[key].name)
	o.outStart.Append(arrow.Timestamp(start))
	o.outEnd.Append(arrow.Timestamp(end))
	a := o.acc
	for i, out := range o.lay.outs {
		b := o.outFeat[i]
		var f *fieldLayout
		var n float64
		if out.field >= 0 {
			f = &o.lay.fields[out.field]
			n = a[f.n]
		}
		switch out.agg {
		case AggCount:
			if f != nil {
				b.Append(n)
			} else {
				b.Append(a[wCount])
			}
		case AggSum:
			appendIf(b, n > 0, a[f.sum])
		case AggMean:
			appendIf(b, n > 0, a[f.sum]/n)
		case AggMin:
			appendIf(b, n > 0, a[f.min])
		case AggMax:
			appendIf(b, n > 0, a[f.max])
		case AggVariance:
			appendIf(b, n > 1, a[f.m2]/(n-1))
		case AggStddev:
			appendIf(b, n > 1, math.Sqrt(a[f.m2]/(n-1)))
		case AggFirst:
			appendIf(b, n > 0, a[f.firstV])
		case AggLast:
			appendIf(b, n > 0, a[f.lastV])
		case AggDelta:
			appendIf(b, n > 0, a[f.lastV]-a[f.firstV])
		case AggRate:
			if f == nil {
				b.Append(a[wCount] / (float64(end-start) / 1e9))
				break
			}
			dt := float64(bitsT(a[f.lastT])-bitsT(a[f.firstT])) / 1e9
			appendIf(b, n > 0 && dt > 0, (a[f.lastV]-a[f.firstV])/dt)
		case AggCountIf:
			b.Append(a[o.lay.countIfs[out.aux].word])
		case AggDistinctCount:
			var est uint64
			if h := o.accH[out.aux]; h != nil {
				est = h.Estimate()
			}
			b.Append(float64(est))
		case AggQuantile:
			if q := &o.accQ[out.aux]; q.n > 0 {
				b.Append(q.quantile(out.q, &o.qscratch, &o.fscratch))
			} else {
				b.AppendNull()
			}
		case AggMissingRatio:
			b.Append((a[wCount] - n) / a[wCount])
		case AggSecondsSinceLast:
			appendIf(b, prev != math.MinInt64, float64(bitsT(a[wFirstT])-prev)/1e9)
		}
	}
	o.outUpdate.Append(update)
	partial := o.emitFlag
	if partial == partialNone && end <= o.keys[key].born {
		partial = partialLate
		o.stats.PartialLate++
	}
	if o.outPartial != nil {
		o.outPartial.Append(partialNames[partial])
	}
	o.outOffFirst.Append(offFirst)
	o.outOffLast.Append(offLast)
	o.stats.Emitted++
	if update {
		o.stats.Updates++
	}
}

func appendIf(b *array.Float64Builder, ok bool, v float64) {
	if ok {
		b.Append(v)
	} else {
		b.AppendNull()
	}
}

// expireAll discards every pane (after Drain fired them all).
func (o *Operator) expireAll() {
	for i := range o.panes {
		if o.panes[i].live {
			o.freePane(int32(i))
		}
	}
	o.haveRange = false
	o.sheap = o.sheap[:0]
}
