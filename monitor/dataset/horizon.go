package dataset

// The indexes a period's join holds: labels by entity for the horizon
// rule (sorted event times per entity), and inference ids, kept as 16
// bytes when they are result_ids (32 lowercase hex digits), so the
// per-prediction id set of a period costs what docs/quality.md says.

import "slices"

// entityLabels are one entity's labels without an inference id, as
// times in Unix nanoseconds: positive (value 1) and negative events
// apart, sorted and deduplicated by seal.
type entityLabels struct {
	pos, neg []int64
}

// entityIndex holds the labels of a period by entity.
type entityIndex struct {
	idx    map[string]int32
	labels []entityLabels
	sealed bool
}

func newEntityIndex() *entityIndex { return &entityIndex{idx: map[string]int32{}} }

// add holds a label of entity at t (Unix ns).
func (x *entityIndex) add(entity string, t int64, positive bool) {
	i, ok := x.idx[entity]
	if !ok {
		i = int32(len(x.labels))
		x.idx[entity] = i
		x.labels = append(x.labels, entityLabels{})
	}
	e := &x.labels[i]
	if positive {
		e.pos = append(e.pos, t)
	} else {
		e.neg = append(e.neg, t)
	}
}

// seal sorts each entity's times and drops repeats (a replay's second
// copy of a label: the same entity, time and value), returning how many
// it dropped. Holding the labels after is what they cost: 8 bytes each,
// in slices copied to their length when appends left slack.
func (x *entityIndex) seal() (duplicates int64) {
	if x.sealed {
		return 0
	}
	x.sealed = true
	dedup := func(ts []int64) []int64 {
		slices.Sort(ts)
		n := len(ts)
		ts = slices.Compact(ts)
		duplicates += int64(n - len(ts))
		if cap(ts) > len(ts)+len(ts)/8 {
			ts = append(make([]int64, 0, len(ts)), ts...)
		}
		return ts
	}
	for i := range x.labels {
		x.labels[i].pos = dedup(x.labels[i].pos)
		x.labels[i].neg = dedup(x.labels[i].neg)
	}
	return duplicates
}

// distinct is the number of labels held, repeats dropped (after seal).
func (x *entityIndex) distinct() int64 {
	var n int64
	for _, e := range x.labels {
		n += int64(len(e.pos) + len(e.neg))
	}
	return n
}

// positiveWithin reports whether a positive label of entity falls in
// (t, t+h]: the horizon rule, seen from the prediction at t. It is the
// same as the prediction's t being in [T-h, T) for a label at T.
func (x *entityIndex) positiveWithin(entity string, t, h int64) bool {
	i, ok := x.idx[entity]
	if !ok {
		return false
	}
	pos := x.labels[i].pos
	k, found := slices.BinarySearch(pos, t)
	if found {
		k++ // a label at t itself is not after the prediction: (t, ...
	}
	return k < len(pos) && pos[k] <= addSat(t, h)
}

// idIndex maps inference ids to an index. A result_id (32 lowercase hex
// digits, what the S3 sink writes and labels carry back) is kept as its 16
// bytes; any other id as its string.
type idIndex struct {
	hex   map[[16]byte]int32
	other map[string]int32
}

func newIDIndex() idIndex {
	return idIndex{hex: map[[16]byte]int32{}, other: map[string]int32{}}
}

func (x idIndex) get(id string) (int32, bool) {
	if k, ok := hexID(id); ok {
		i, ok := x.hex[k]
		return i, ok
	}
	i, ok := x.other[id]
	return i, ok
}

func (x idIndex) put(id string, i int32) {
	if k, ok := hexID(id); ok {
		x.hex[k] = i
		return
	}
	x.other[id] = i
}

// hexID is id's 16 bytes when it is 32 lowercase hex digits. Upper case
// is not taken: "AB…" and "ab…" are two ids to a string comparison, and
// must stay two here.
func hexID(id string) (k [16]byte, ok bool) {
	if len(id) != 32 {
		return k, false
	}
	for i := range k {
		hi, ok1 := unhex(id[2*i])
		lo, ok2 := unhex(id[2*i+1])
		if !ok1 || !ok2 {
			return k, false
		}
		k[i] = hi<<4 | lo
	}
	return k, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
