package windowing

import (
	"math"
)

// Keys: the key table, the LRU order by epoch, and eviction.

func (o *Operator) lookupKey(name string) int32 {
	if id, ok := o.keyIdx[name]; ok {
		o.touch(id)
		return id
	}
	if len(o.keyIdx) >= o.maxKeys {
		o.evict(o.lruVictim(), false)
	}
	var id int32
	if n := len(o.freeKeys); n > 0 {
		id = o.freeKeys[n-1]
		o.freeKeys = o.freeKeys[:n-1]
	} else {
		o.keys = append(o.keys, keyState{})
		id = int32(len(o.keys) - 1)
	}
	name = string([]byte(name)) // own copy: the batch's buffers are the caller's
	o.keys[id] = keyState{name: name, newest: none, oldest: none, live: true, gen: o.keys[id].gen + 1,
		epoch: o.epoch - 1, lastFired: math.MinInt64, lastGoneT: math.MinInt64, born: o.bornAfterEviction(name)}
	o.keyIdx[name] = id
	o.keyBytes += keyCost(name)
	o.touch(id)
	return id
}

type lruEntry struct {
	id         int32
	gen, epoch uint32
}

// tick counts one event towards the LRU epoch.
func (o *Operator) tick() {
	if o.epochLeft--; o.epochLeft <= 0 {
		o.epoch++
		o.epochLeft = o.epochLen
	}
}

func (o *Operator) lruValid(e lruEntry) bool {
	k := &o.keys[e.id]
	return k.live && k.gen == e.gen && k.epoch == e.epoch
}

func (o *Operator) touch(id int32) {
	k := &o.keys[id]
	if k.epoch == o.epoch {
		return
	}
	k.epoch = o.epoch
	o.lruq = append(o.lruq, lruEntry{id: id, gen: k.gen, epoch: o.epoch})
	if len(o.lruq)-o.lruqHead > 2*len(o.keyIdx)+1024 {
		// Drop the entries superseded by later updates: one per key is left.
		n := 0
		for _, e := range o.lruq[o.lruqHead:] {
			if o.lruValid(e) {
				o.lruq[n] = e
				n++
			}
		}
		o.lruq, o.lruqHead = o.lruq[:n], 0
	}
}

// lruVictim is the key updated least recently (to the epoch).
func (o *Operator) lruVictim() int32 {
	for o.lruqHead < len(o.lruq) {
		e := o.lruq[o.lruqHead]
		o.lruqHead++
		if o.lruValid(e) {
			return e.id
		}
	}
	panic("windowing: LRU queue lost a key") // every live key has an entry
}

// evict removes the least recently updated key to make room. Its windows
// still open are emitted now (early, counted in EarlyWindows) and its
// closed panes, kept only for allowed lateness, are dropped; a key with no
// state left is simply forgotten.
func (o *Operator) evict(id int32, forBytes bool) {
	k := &o.keys[id]
	hadState := k.npanes > 0
	if hadState {
		o.flushUpdates()
		o.stats.EvictedKeys++
		if forBytes {
			o.stats.EvictedForBytes++
			o.budgetThisCall++
		} else {
			o.evictedThisCall++
		}
		o.emitFlag = partialEvicted
		defer func() { o.emitFlag = partialNone }()
		if o.session {
			for h := k.oldest; h != none; h = o.panes[h].newer {
				if o.sess[h].firedEnd != o.sessionEnd(h) {
					o.stats.EvictedEvents += uint64(o.paneWords(h)[wCount])
					o.emitSession(id, h, false)
					o.stats.EarlyWindows++
					o.earlyThisCall++
				}
			}
		} else {
			firstOpen := floorDiv(o.wm, o.slide) + 1 // first window end index not yet fired
			for h := k.oldest; h != none; h = o.panes[h].newer {
				if o.panes[h].idx+o.k >= firstOpen { // in a window still open
					o.stats.EvictedEvents += uint64(o.paneWords(h)[wCount])
				}
			}
			last := o.panes[k.newest].idx + o.k
			for e := max(firstOpen, o.panes[k.oldest].idx+1); e <= last; e++ {
				if o.keyHasData(id, e-o.k, e) {
					o.emitWindow(id, e, false)
					o.stats.EarlyWindows++
					o.earlyThisCall++
				}
			}
		}
		for k.oldest != none {
			o.freePane(k.oldest)
		}
	} else {
		o.stats.DroppedIdle++
	}
	if hadState {
		o.rememberEviction(k.name)
	}
	delete(o.keyIdx, k.name)
	o.keyBytes -= keyCost(k.name)
	*k = keyState{gen: k.gen}
	o.freeKeys = append(o.freeKeys, id)
}
