package scorer

import (
	"container/list"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// errConflict: the name is loaded, or being loaded, already (409).
var errConflict = errors.New("already loaded")

// errNoMemory: the model does not fit in the memory budget even after
// unloading every idle model (507, which makes SageMaker unload models and
// retry).
var errNoMemory = errors.New("insufficient memory")

// loadedModel is one model of a multi-model server.
type loadedModel struct {
	name, url string
	model     *Model
	h         http.Handler // the single-model handler, serving this model
	bytes     int64        // model.HeapBytes(), counted against the budget
	loadedAt  time.Time

	// Guarded by the store's lock.
	lastUsed time.Time
	elem     *list.Element // in the store's LRU list; nil once unloaded
	refs     int           // requests using the model now
}

// modelStore holds the loaded models within a memory budget. A model is
// counted from the moment it is committed until it is unloaded and its last
// request has finished, so the budget bounds what is really held: an
// unloaded model that is still scoring keeps its bytes until it is done.
type modelStore struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	byName  map[string]*loadedModel
	lru     *list.List // of *loadedModel, most recently used first
	loading map[string]bool
	met     *MultiModelMetrics
	now     func() time.Time
}

func newModelStore(budget int64, met *MultiModelMetrics) *modelStore {
	s := &modelStore{
		budget: budget, byName: map[string]*loadedModel{}, lru: list.New(),
		loading: map[string]bool{}, met: met, now: time.Now,
	}
	s.met.state(0, 0, budget)
	return s
}

// reserve claims name for a load, so two loads of one name cannot both
// succeed and a load's parse runs outside the lock.
func (s *modelStore) reserve(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName[name] != nil || s.loading[name] {
		return fmt.Errorf("model %q is %w; unload it first (DELETE /models/%s)", name, errConflict, name)
	}
	s.loading[name] = true
	return nil
}

// abandon releases a reservation whose load failed.
func (s *modelStore) abandon(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.loading, name)
}

// commit adds a reserved, parsed model, first unloading the least recently
// used idle models it needs room from. It unloads nothing when that would
// not be enough: a model serving a request is never evicted (its request
// would finish, but its memory would stay), and SageMaker, answered 507,
// chooses what to unload itself. It returns the models it evicted.
func (s *modelStore) commit(e *loadedModel) ([]*loadedModel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.loading, e.name)
	if e.bytes > s.budget {
		return nil, fmt.Errorf("%w: model %q needs %d bytes, more than the whole memory budget of %d bytes", errNoMemory, e.name, e.bytes, s.budget)
	}
	need := s.used + e.bytes - s.budget
	var victims []*loadedModel
	if need > 0 {
		freed := int64(0)
		for el := s.lru.Back(); el != nil && freed < need; el = el.Prev() {
			v := el.Value.(*loadedModel)
			if v.refs == 0 {
				victims = append(victims, v)
				freed += v.bytes
			}
		}
		if freed < need {
			return nil, fmt.Errorf("%w: model %q needs %d bytes; %d of the %d byte budget are used, and the idle models hold only %d",
				errNoMemory, e.name, e.bytes, s.used, s.budget, freed)
		}
	}
	for _, v := range victims {
		s.remove(v)
	}
	now := s.now()
	e.loadedAt, e.lastUsed = now, now
	e.elem = s.lru.PushFront(e)
	s.byName[e.name] = e
	s.used += e.bytes
	s.met.unload(unloadEvicted, len(victims))
	s.met.state(len(s.byName), s.used, s.budget)
	return victims, nil
}

// remove unloads e; its bytes are released now if no request holds it,
// else by the last release. Called with the lock held.
func (s *modelStore) remove(e *loadedModel) {
	delete(s.byName, e.name)
	s.lru.Remove(e.elem)
	e.elem = nil
	if e.refs == 0 {
		s.used -= e.bytes
	}
}

// unload removes name; false if it is not loaded.
func (s *modelStore) unload(name string) (*loadedModel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byName[name]
	if e == nil {
		return nil, false
	}
	s.remove(e)
	s.met.unload(unloadRequested, 1)
	s.met.state(len(s.byName), s.used, s.budget)
	return e, true
}

// acquire returns name's model for one request and marks it most recently
// used; the caller must release it. nil if it is not loaded.
func (s *modelStore) acquire(name string) *loadedModel {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byName[name]
	if e == nil {
		return nil
	}
	e.refs++
	e.lastUsed = s.now()
	s.lru.MoveToFront(e.elem)
	return e
}

func (s *modelStore) release(e *loadedModel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.refs--
	if e.refs == 0 && e.elem == nil {
		s.used -= e.bytes
		s.met.state(len(s.byName), s.used, s.budget)
	}
}

// modelStatus is a loaded model as GET /models/NAME describes it.
type modelStatus struct {
	Name, URL          string
	Info               ModelInfo
	Bytes              int64
	LoadedAt, LastUsed time.Time
	InFlight           int
}

func (e *loadedModel) status() modelStatus {
	return modelStatus{Name: e.name, URL: e.url, Info: e.model.Info(), Bytes: e.bytes,
		LoadedAt: e.loadedAt, LastUsed: e.lastUsed, InFlight: e.refs}
}

// describe returns name's status; false if it is not loaded.
func (s *modelStore) describe(name string) (modelStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byName[name]
	if e == nil {
		return modelStatus{}, false
	}
	return e.status(), true
}

// list returns the loaded models' names and urls sorted by name, from
// offset on, at most limit of them, and whether more follow.
func (s *modelStore) list(offset, limit int) (names, urls []string, more bool) {
	s.mu.Lock()
	all := make([]*loadedModel, 0, len(s.byName))
	for _, e := range s.byName {
		all = append(all, e)
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	if offset > len(all) {
		offset = len(all)
	}
	end := min(offset+limit, len(all))
	for _, e := range all[offset:end] {
		names = append(names, e.name)
		urls = append(urls, e.url)
	}
	return names, urls, end < len(all)
}

// usage returns the bytes counted and the budget.
func (s *modelStore) usage() (used, budget int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used, s.budget
}
