package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// scriptedKinesis answers PutRecords from a script, one step per call (the
// last step repeats), and lists one shard over the whole key space.
type scriptedKinesis struct {
	mu    sync.Mutex
	steps []func(in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error)
	calls int
	sent  int // records in accepted calls
}

var _ PutRecordsAPI = (*scriptedKinesis)(nil)

func (k *scriptedKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	step := k.steps[min(k.calls, len(k.steps)-1)]
	k.calls++
	out, err := step(in)
	if err == nil {
		for _, r := range out.Records {
			if r.ErrorCode == nil {
				k.sent++
			}
		}
	}
	return out, err
}

func (k *scriptedKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("shardId-0"), HashKeyRange: &types.HashKeyRange{
		StartingHashKey: aws.String("0"), EndingHashKey: aws.String("340282366920938463463374607431768211455")}}}}, nil
}

func accept(in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
	return &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}, nil
}

func refuse(err error) func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
	return func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) { return nil, err }
}

// failFirst fails the first record of the call, as a hot shard does.
func failFirst(in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
	out, _ := accept(in)
	out.Records[0].ErrorCode = aws.String("ProvisionedThroughputExceededException")
	return out, nil
}

func someEvents(n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{Key: fmt.Sprintf("user-%d", i), Data: []byte(`{"n":1}`)}
	}
	return evs
}

// Throttling and failed records are retried; a refusal that retrying
// cannot fix ends the publish at the first call.
func TestPutRetriesWhatTimeFixesOnly(t *testing.T) {
	msg := aws.String("m")
	for _, tc := range []struct {
		name      string
		steps     []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error)
		calls     int
		retries   int64
		permanent bool
	}{
		{"accepted", nil, 1, 0, false},
		{"throttled twice", []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){
			refuse(&types.ProvisionedThroughputExceededException{Message: msg}),
			refuse(&types.ProvisionedThroughputExceededException{Message: msg})}, 3, 20, false},
		{"internal failure", []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){
			refuse(&types.InternalFailureException{Message: msg})}, 2, 10, false},
		{"a connection reset", []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){
			refuse(errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"))}, 2, 10, false},
		{"one record failed", []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){failFirst}, 2, 1, false},
		{"access denied", []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){
			refuse(&types.AccessDeniedException{Message: msg})}, 1, 0, true},
		{"no such stream", []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){
			refuse(&types.ResourceNotFoundException{Message: msg})}, 1, 0, true},
		{"KMS key disabled", []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){
			refuse(&types.KMSDisabledException{Message: msg})}, 1, 0, true},
	} {
		k := &scriptedKinesis{steps: append(tc.steps, accept)}
		p := NewPublisher(k, PublisherConfig{Stream: "s"})
		err := p.Publish(context.Background(), someEvents(10))
		if tc.permanent {
			var ae interface{ ErrorCode() string }
			if !errors.As(err, &ae) {
				t.Errorf("%s: Publish returned %v, want the service's refusal", tc.name, err)
			}
		} else if err != nil || k.sent != 10 {
			t.Errorf("%s: Publish returned %v with %d of 10 records accepted", tc.name, err, k.sent)
		}
		if k.calls != tc.calls || p.Retries.Load() != tc.retries {
			t.Errorf("%s: %d calls and %d records retried, want %d and %d", tc.name, k.calls, p.Retries.Load(), tc.calls, tc.retries)
		}
	}
}

// Records that keep failing give up after MaxAttempts calls.
func TestPutGivesUpAfterMaxAttempts(t *testing.T) {
	k := &scriptedKinesis{steps: []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){failFirst}}
	p := NewPublisher(k, PublisherConfig{Stream: "s", MaxAttempts: 3})
	if err := p.Publish(context.Background(), someEvents(4)); err == nil {
		t.Fatal("a record failing every time was reported sent")
	}
	if k.calls != 3 {
		t.Fatalf("%d calls, want 3 (MaxAttempts)", k.calls)
	}
}

// A canceled publish stops retrying.
func TestPutStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	k := &scriptedKinesis{steps: []func(*kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error){
		func(in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
			cancel()
			return failFirst(in)
		}}}
	p := NewPublisher(k, PublisherConfig{Stream: "s"})
	if err := p.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := p.entries(someEvents(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.put(ctx, entries); !errors.Is(err, context.Canceled) {
		t.Fatalf("put returned %v, want context.Canceled", err)
	}
	if k.calls != 1 {
		t.Fatalf("%d calls after the cancel, want 1", k.calls)
	}
}
