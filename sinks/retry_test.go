package sinks

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"

	"github.com/streamscore/streamscore/internal/retry/retrytest"
)

func responseErr(status int, api error) error {
	return retrytest.ResponseError("DynamoDB", "PutItem", status, api)
}

// What the retrier does with each kind of failure: give up on the request
// (permanent), hold the batches and report an outage, or retry.
func TestRetrierClassifies(t *testing.T) {
	msg := "m"
	m := &msg
	for _, tc := range []struct {
		err               error
		permanent, outage bool
	}{
		{responseErr(400, &ddbtypes.ConditionalCheckFailedException{Message: m}), true, false},
		{responseErr(400, &smithy.GenericAPIError{Code: "ValidationException"}), true, false},
		{&PermanentError{Sink: "s", Err: errors.New("row refused")}, true, false},
		{&PermanentError{Sink: "s", Err: responseErr(400, &ddbtypes.ThrottlingException{Message: m})}, true, false},
		{responseErr(400, &ddbtypes.ResourceNotFoundException{Message: m}), false, true},
		{responseErr(403, &smithy.GenericAPIError{Code: "AccessDenied"}), false, true},
		{responseErr(400, &snstypes.KMSDisabledException{Message: m}), false, true},
		{&PermanentError{Sink: "s", Err: responseErr(400, &smithy.GenericAPIError{Code: "AccessDeniedException"})}, false, true},
		// KMS throttling is throttling, not an unusable key (it used to
		// count as an outage).
		{responseErr(400, &snstypes.KMSThrottlingException{Message: m}), false, false},
		{responseErr(400, &ddbtypes.ProvisionedThroughputExceededException{Message: m}), false, false},
		{responseErr(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), false, false},
		{responseErr(408, errors.New("request timeout")), false, false},
		{fmt.Errorf("put: %w", context.Canceled), false, false},
		{errors.New("SNS failed 3 alerts of the batch"), false, false},
	} {
		permanent, outage := classify(tc.err)
		if permanent != tc.permanent || outage != tc.outage {
			t.Errorf("classify(%v) = permanent %v outage %v, want %v %v", tc.err, permanent, outage, tc.permanent, tc.outage)
		}
	}
}

func TestBackoffPolicyKeepsDefaults(t *testing.T) {
	p := Backoff{}.withDefaults().policy()
	if p.Base != 100*time.Millisecond || p.Cap != 10*time.Second || p.Jitter != 1 {
		t.Fatalf("default policy %+v", p)
	}
	for attempt := range 20 {
		if d := p.Delay(attempt); d <= 0 || d > p.Interval(attempt) {
			t.Fatalf("attempt %d: delay %v outside (0, %v]", attempt, d, p.Interval(attempt))
		}
	}
}
