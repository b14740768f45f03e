package loadtest

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Sender publishes in the background with one goroutine per shard, as the
// KPL does: a slow PutRecords call for one shard delays neither the other
// shards nor the caller building the next batch, and a shard's records stay
// in the order they were given (Kinesis orders within a shard only). A
// shard that falls behind sends everything queued for it in its next call,
// so a backlog turns into fuller aggregates rather than more calls.
type Sender struct {
	p    *Publisher
	done func(evs []Event, at time.Time)

	mu     sync.Mutex
	queues [][]Event // per shard, waiting to be sent
	wake   []chan struct{}
	closed bool
	err    error

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start lists the stream's shards if needed and starts a sender per shard.
// done is called, from the shard's goroutine, with every batch the stream
// accepted and the time it did.
func (p *Publisher) Start(ctx context.Context, done func(evs []Event, at time.Time)) (*Sender, error) {
	if err := p.Prepare(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sender{p: p, done: done, queues: make([][]Event, len(p.shards)), wake: make([]chan struct{}, len(p.shards)), cancel: cancel}
	for i := range s.wake {
		s.wake[i] = make(chan struct{}, 1)
	}
	for i := range p.shards {
		s.wg.Go(func() { s.run(ctx, i) })
	}
	return s, nil
}

// Send queues events for their shards and returns at once.
func (s *Sender) Send(evs []Event) {
	if len(evs) == 0 {
		return
	}
	s.mu.Lock()
	for _, e := range evs {
		i := s.p.shardOf(e.Key)
		s.queues[i] = append(s.queues[i], e)
	}
	s.mu.Unlock()
	for _, w := range s.wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Err is the first error a shard's sender met (it then stops), or nil.
func (s *Sender) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close sends what is queued, stops the senders and returns the first error.
func (s *Sender) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for _, w := range s.wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	s.wg.Wait()
	s.cancel()
	return s.Err()
}

func (s *Sender) run(ctx context.Context, shard int) {
	for {
		s.mu.Lock()
		evs, closed, failed := s.queues[shard], s.closed, s.err != nil
		s.queues[shard] = nil
		s.mu.Unlock()
		if failed {
			return
		}
		if len(evs) > 0 {
			if err := s.send(ctx, evs); err != nil {
				s.mu.Lock()
				s.err = errors.Join(s.err, err)
				s.mu.Unlock()
				return
			}
			s.done(evs, time.Now().UTC())
			continue
		}
		if closed {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake[shard]:
		}
	}
}

// send puts one shard's events in calls of at most 500 records and 5 MiB.
func (s *Sender) send(ctx context.Context, evs []Event) error {
	entries, err := s.p.entries(evs)
	if err != nil {
		return err
	}
	return s.p.putAll(ctx, entries)
}
