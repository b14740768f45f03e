package scorer

import "sync/atomic"

// Switch is a ModelSource whose source can be replaced while scorers read
// it: how a promotion or a rollback changes a running scorer's champion
// without a restart. Scorers read the current model once per batch, so a
// switch takes effect between batches, as a hot reload does.
type Switch struct {
	src atomic.Pointer[ModelSource]
}

// NewSwitch returns a switch reading from initial.
func NewSwitch(initial ModelSource) *Switch {
	s := &Switch{}
	s.Set(initial)
	return s
}

// Set makes src the source; the batch being scored keeps the model it read.
func (s *Switch) Set(src ModelSource) { s.src.Store(&src) }

// Source is the current source.
func (s *Switch) Source() ModelSource { return *s.src.Load() }

// Current is the current source's model.
func (s *Switch) Current() *Model { return s.Source().Current() }

var _ ModelSource = (*Switch)(nil)
