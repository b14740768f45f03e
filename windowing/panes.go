package windowing

import "math"

// Panes: allocation from the pool, the per-key pane lists, the slot ring,
// and folding a row into a pane.

func (o *Operator) allocPane(key int32) int32 {
	var h int32
	if n := len(o.freePanes); n > 0 {
		h = o.freePanes[n-1]
		o.freePanes = o.freePanes[:n-1]
		// The buffers a recycled pane's sketches kept become live again.
		for i := range o.lay.quants {
			b := o.qs[int(h)*len(o.lay.quants)+i].bytes()
			o.poolSketchBytes -= b
			o.sketchBytes += b
		}
	} else {
		h = int32(len(o.panes))
		o.panes = append(o.panes, paneMeta{})
		if o.session {
			o.sess = append(o.sess, sessMeta{})
		}
		o.slab = append(o.slab, make([]float64, o.lay.words)...)
		for range o.lay.hlls {
			o.hlls = append(o.hlls, nil)
			o.hllN = append(o.hllN, 0)
		}
		for range o.lay.quants {
			o.qs = append(o.qs, qsketch{})
		}
	}
	p := &o.panes[h]
	*p = paneMeta{key: key, newer: none, older: none, live: true, gen: p.gen,
		minOff: math.MaxUint64}
	if o.session {
		o.sess[h] = sessMeta{firedEnd: math.MinInt64, heapAt: math.MaxInt64}
	}
	clear(o.paneWords(h))
	o.keys[key].npanes++
	return h
}

func (o *Operator) paneWords(h int32) []float64 {
	w := o.lay.words
	return o.slab[int(h)*w : int(h)*w+w : int(h)*w+w]
}

// linkAfter inserts h into its key's list right after (newer than) prev,
// or as the oldest when prev is none.
func (o *Operator) linkAfter(key, prev, h int32) {
	k := &o.keys[key]
	p := &o.panes[h]
	p.older = prev
	if prev == none {
		p.newer = k.oldest
		k.oldest = h
	} else {
		p.newer = o.panes[prev].newer
		o.panes[prev].newer = h
	}
	if p.newer != none {
		o.panes[p.newer].older = h
	} else {
		k.newest = h
	}
}

// freePane unlinks h from its key (and slot) and returns it to the pool.
func (o *Operator) freePane(h int32) {
	p := &o.panes[h]
	k := &o.keys[p.key]
	if w := o.paneWords(h); o.lay.times && w[wCount] > 0 && bitsT(w[wLastT]) > k.lastGoneT {
		k.lastGoneT = bitsT(w[wLastT])
	}
	if p.older != none {
		o.panes[p.older].newer = p.newer
	} else {
		k.oldest = p.newer
	}
	if p.newer != none {
		o.panes[p.newer].older = p.older
	} else {
		k.newest = p.older
	}
	k.npanes--
	if !o.session {
		s := o.slot(p.idx)
		last := s.handles[len(s.handles)-1]
		s.handles[p.pos] = last
		o.panes[last].pos = p.pos
		s.handles = s.handles[:len(s.handles)-1]
	}
	p.live = false
	p.gen++
	o.releaseSketches(h)
	o.freePanes = append(o.freePanes, h)
}

func (o *Operator) slot(idx int64) *paneSlot {
	// A floored modulo: consecutive indices must take consecutive slots
	// across zero too (uint64(idx) % r does not when r is not a power of 2,
	// and two live panes of events before 1970 then shared a slot).
	r := int64(len(o.slots))
	return &o.slots[(idx%r+r)%r]
}

// addRow folds row i of the current batch into pane h.
func (o *Operator) addRow(h int32, i int, t int64, off uint64) {
	p := o.paneWords(h)
	o.lay.addEventTime(p, t)
	m := &o.panes[h]
	m.minOff = min(m.minOff, off)
	m.maxOff = max(m.maxOff, off)
	for fi := range o.lay.fields {
		f := &o.lay.fields[fi]
		c := &o.cols[fi]
		if c.kind == 's' {
			// A string feature only counts its values.
			if !c.isNull(i) {
				p[f.n]++
			}
			continue
		}
		if x, ok := c.number(i); ok {
			f.addValue(p, x, t)
		}
	}
	for ci := range o.lay.countIfs {
		c := &o.lay.countIfs[ci]
		if o.cols[c.field].equals(i, &c.eq) {
			p[c.word]++
		}
	}
	for si := range o.lay.hlls {
		var buf [8]byte
		b, ok := o.cols[o.lay.hlls[si].field].distinctKey(i, &buf)
		if !ok {
			continue
		}
		hi := int(h)*len(o.lay.hlls) + si
		hp := &o.hlls[hi]
		if *hp == nil {
			*hp = newHLL()
		}
		if n := o.hllN[hi]; n < math.MaxUint32 {
			o.sketchBytes += hllBytes(n+1) - hllBytes(n)
			o.hllN[hi] = n + 1
		}
		(*hp).Insert(b)
	}
	for di := range o.lay.quants {
		if x, ok := o.cols[o.lay.quants[di].field].number(i); ok {
			o.sketchBytes += o.qs[int(h)*len(o.lay.quants)+di].add(x)
		}
	}
}
