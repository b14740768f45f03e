package consumer

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/internal/retry/retrytest"
)

// The shard loops' backoff: from base doubling to the cap, every wait at
// least half its interval, starting over after reset.
func TestPollBackoffSchedule(t *testing.T) {
	b := newBackoff(time.Second, 5*time.Second)
	if b.failing() || b.next() != time.Second {
		t.Fatalf("fresh backoff: failing %v, next %v", b.failing(), b.next())
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		if got := b.next(); got != want {
			t.Fatalf("next %v, want %v", got, want)
		}
		if d := b.Delay(); d <= want/2 || d > want {
			t.Fatalf("wait %v outside (%v, %v]", d, want/2, want)
		}
	}
	if !b.failing() {
		t.Fatal("a backoff that waited does not report failing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.wait(ctx) {
		t.Fatal("wait on a canceled context reported the delay elapsed")
	}
	b.reset()
	if b.failing() || b.next() != time.Second {
		t.Fatalf("after reset: failing %v, next %v", b.failing(), b.next())
	}
}

// Read errors as the Kinesis client returns them, with their HTTP status.
func TestFatalReadErrorsAsTheClientReturnsThem(t *testing.T) {
	wrap := func(status int, api error) error {
		return retrytest.ResponseError("Kinesis", "GetRecords", status, api)
	}
	msg := aws.String("m")
	for _, tc := range []struct {
		err   error
		fatal bool
	}{
		{wrap(400, &ktypes.AccessDeniedException{Message: msg}), true},
		{wrap(400, &ktypes.KMSInvalidStateException{Message: msg}), true},
		{wrap(400, &ktypes.KMSOptInRequired{Message: msg}), true},
		{wrap(400, &smithy.GenericAPIError{Code: "UnrecognizedClientException"}), true},
		{wrap(400, &smithy.GenericAPIError{Code: "ValidationException"}), true},
		{wrap(403, &smithy.GenericAPIError{Code: "IncompleteSignatureException"}), true},
		{wrap(400, &ktypes.ExpiredIteratorException{Message: msg}), false},
		{wrap(400, &ktypes.ProvisionedThroughputExceededException{Message: msg}), false},
		{wrap(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), false},
		{wrap(500, &ktypes.InternalFailureException{Message: msg}), false},
		{wrap(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), false},
		{&smithy.CanceledError{Err: context.Canceled}, false},
	} {
		if got := isFatalReadError(tc.err); got != tc.fatal {
			t.Errorf("isFatalReadError(%v) = %v, want %v", tc.err, got, tc.fatal)
		}
	}
}

// A processor that takes longer than IdleHeartbeat over a caught-up batch
// gets the records that came meanwhile before any heartbeat: a heartbeat
// says the shard was read and had nothing new, which the pipeline's
// windows take for idle time (their watermark moves on with processing
// time, and records read after it could be late).
func TestNoHeartbeatWithoutAnEmptyRead(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	first := produce(t, env.Kinesis, stream, 5, "first")
	cfg := testConfig(env.Name("hbread"), "w1", stream)
	cfg.IdleHeartbeat = 100 * time.Millisecond

	slow, resume := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var calls []string // "records" or "heartbeat", in order
	slowAt := -1       // the index of the slow batch's call
	stop := run(t, newConsumer(t, cfg, env.Kinesis, env.DynamoDB), ProcessFunc(func(ctx context.Context, b *Batch) error {
		mu.Lock()
		if len(b.Records) == 0 {
			calls = append(calls, "heartbeat")
			mu.Unlock()
			return nil
		}
		calls = append(calls, "records")
		isFirst := slowAt < 0
		if isFirst {
			slowAt = len(calls) - 1
		}
		mu.Unlock()
		if isFirst {
			// Slow over the first batch: the test writes more records
			// meanwhile, and the processor outlasts IdleHeartbeat
			// several times over after them.
			close(slow)
			select {
			case <-resume:
			case <-ctx.Done():
				return ctx.Err()
			}
			time.Sleep(5 * cfg.IdleHeartbeat)
		}
		return b.Checkpointer.MarkDurable(b.Last())
	}))
	select {
	case <-slow:
	case <-time.After(time.Minute):
		t.Fatalf("the %d records were not delivered within a minute", len(first))
	}
	produce(t, env.Kinesis, stream, 5, "more")
	close(resume)
	waitFor(t, time.Minute, "the records written during the slow batch", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slowAt >= 0 && slices.Contains(calls[slowAt+1:], "records")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if next := calls[slowAt+1:]; next[0] != "records" {
		t.Fatalf("after the slow batch the processor got %v: a heartbeat came before the shard was read again", next)
	}
}
