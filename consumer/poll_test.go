package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

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
