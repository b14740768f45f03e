package scorer

import (
	"sync"
	"testing"
)

// A switch hands out the model of whichever source was set last, and is
// safe to set while scorers read it (run with -race).
func TestSwitchChangesTheSource(t *testing.T) {
	a, b := &Model{}, &Model{}
	s := NewSwitch(a)
	if s.Current() != a {
		t.Fatal("not the initial model")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 1000 {
			if m := s.Current(); m != a && m != b {
				t.Error("a model of neither source")
				return
			}
		}
	}()
	s.Set(b)
	wg.Wait()
	if s.Current() != b || s.Source() != ModelSource(b) {
		t.Error("the switch did not change source")
	}
}
