package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// handler is a sink's logic behind the shared runner. The runner calls it
// from one goroutine only, so a handler needs no locks for its own state.
type handler interface {
	// handle takes a batch. It either acks it before returning or arranges
	// for it to be acked later (S3 acks when the file is uploaded).
	handle(ctx context.Context, b Batch)
	// flush forces out what has been handled so far and returns a channel
	// that is closed once all of it has been acked: every shard's batches
	// when only is nil, otherwise those of that one shard (a lease hand-over
	// must not cut every other shard's files short).
	flush(ctx context.Context, only *shardKey) <-chan struct{}
	// tick runs periodic work (roll by age, the 60 s metric flush).
	tick(ctx context.Context, now time.Time)
}

// runner gives every sink the same front: a bounded queue (Write blocks
// when it is full), a single worker goroutine, periodic ticks, Flush and a
// Close that never leaves a batch unacked.
type runner struct {
	name string
	h    handler
	m    *sinkMetrics
	hl   *health
	in   chan item

	mu      sync.Mutex
	closed  bool
	writers sync.WaitGroup

	ctx    context.Context // lifetime of retries; cancelled when Close gives up
	cancel context.CancelFunc
	done   chan struct{}

	// closeDone is closed when the first Close returns, with its result in
	// closeErr, for any Close called meanwhile.
	closeDone chan struct{}
	closeErr  error
}

// shardKey names one shard of one stream.
type shardKey struct{ stream, shard string }

// item is what the worker takes from the queue: a batch, or a flush request
// (flush set; only names the shard, nil for all of them).
type item struct {
	b     Batch
	flush chan<- (<-chan struct{})
	only  *shardKey
}

func newRunner(name string, h handler, m *sinkMetrics, hl *health, queue int, every time.Duration) *runner {
	if queue <= 0 {
		queue = 16
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{name: name, h: h, m: m, hl: hl, in: make(chan item, queue), ctx: ctx, cancel: cancel, done: make(chan struct{}), closeDone: make(chan struct{})}
	go r.loop(every)
	return r
}

func (r *runner) loop(every time.Duration) {
	defer close(r.done)
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case it, ok := <-r.in:
			if !ok {
				<-r.h.flush(r.ctx, nil)
				return
			}
			if it.flush != nil {
				it.flush <- r.h.flush(r.ctx, it.only)
				continue
			}
			r.h.handle(r.ctx, it.b)
		case now := <-tick:
			r.h.tick(r.ctx, now)
		}
	}
}

// Healthy returns nil while the sink's service answers, and an error
// naming the cause while it is unavailable: at once when it refuses the
// sink as a whole (access denied, missing table, topic or bucket), or when
// its calls have failed transiently for OutageAfter. Only such an outage
// holds batches unacked; a row the service refuses on its own goes to the
// dead-letter sink and never does. The pipeline's readiness check calls it.
func (r *runner) Healthy() error { return r.hl.check(time.Now()) }

// Write implements Sink.Write.
func (r *runner) Write(ctx context.Context, b Batch) error {
	if b.Ack == nil {
		return fmt.Errorf("%s: batch for %s/%s has no Ack function", r.name, b.Stream, b.Shard)
	}
	if b.Rec == nil {
		return fmt.Errorf("%s: batch for %s/%s has no record", r.name, b.Stream, b.Shard)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.writers.Add(1)
	r.mu.Unlock()
	defer r.writers.Done()

	b.Rec.Retain()
	ack := b.Ack
	rec := b.Rec
	var once sync.Once
	b.Ack = func(err error) {
		once.Do(func() {
			rec.Release()
			r.m.inflight.Dec()
			ack(err)
		})
	}
	// Counted before it is queued: the worker may ack it at once.
	r.m.inflight.Inc()
	select {
	case r.in <- item{b: b}:
		return nil
	case <-ctx.Done():
		r.m.inflight.Dec()
		rec.Release()
		return ctx.Err()
	}
}

// Flush implements Sink.Flush.
func (r *runner) Flush(ctx context.Context) error { return r.flush(ctx, nil) }

// FlushShard implements Sink.FlushShard.
func (r *runner) FlushShard(ctx context.Context, stream, shard string) error {
	return r.flush(ctx, &shardKey{stream, shard})
}

// flush queues a flush request behind the batches already accepted, so
// the handler has handled all of them when it flushes, and waits for its
// acks.
func (r *runner) flush(ctx context.Context, only *shardKey) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.writers.Add(1)
	r.mu.Unlock()
	reply := make(chan (<-chan struct{}), 1)
	select {
	case r.in <- item{flush: reply, only: only}:
		r.writers.Done()
	case <-ctx.Done():
		r.writers.Done()
		return ctx.Err()
	}
	var done <-chan struct{}
	select {
	case done = <-reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close implements Sink.Close. A second Close waits for the first (or its
// own ctx) and returns the same result.
func (r *runner) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		select {
		case <-r.closeDone:
			return r.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.closed = true
	r.mu.Unlock()
	r.closeErr = r.close(ctx)
	r.hl.ok() // a closed sink no longer counts as failing
	close(r.closeDone)
	return r.closeErr
}

// closing reports whether Close has been called.
func (r *runner) closing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *runner) close(ctx context.Context) error {
	// Writers blocked on a full queue get in only as the worker moves on,
	// and during an outage it moves on only once its retries are aborted
	// below: wait for them alongside ctx, not before it.
	stopped := make(chan struct{})
	go func() {
		r.writers.Wait()
		close(r.in)
		<-r.done
		close(stopped)
	}()
	select {
	case <-stopped:
		r.cancel()
		return nil
	case <-ctx.Done():
		// Abort retries: unacked batches, and those of writers still
		// getting in, are acked with the error, so the pipeline knows they
		// never became durable.
		r.cancel()
		<-stopped
		return errors.Join(fmt.Errorf("%s: closed before every batch was durable", r.name), ctx.Err())
	}
}

// closedChan is an already closed channel, for handlers with nothing pending.
func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// flushShards rolls one shard (only) or every shard of a per-shard file
// sink and returns a channel closed once what they rolled is acked: roll
// returns the channel of a shard's newest roll, which its rolls close in
// order.
func flushShards[S any](shards map[shardKey]S, only *shardKey, roll func(S) <-chan struct{}) <-chan struct{} {
	if only != nil {
		sh, ok := shards[*only]
		if !ok {
			return closedChan() // nothing of it was ever handled
		}
		return roll(sh)
	}
	waits := make([]<-chan struct{}, 0, len(shards))
	for _, sh := range shards {
		waits = append(waits, roll(sh))
	}
	c := make(chan struct{})
	go func() {
		for _, w := range waits {
			<-w
		}
		close(c)
	}()
	return c
}
