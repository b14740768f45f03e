package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemakerruntime/types"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/streamscore/streamscore/internal/retry/retrytest"
)

// sdkErr wraps an API error as a Kinesis call returns it.
func sdkErr(status int, api error) error {
	return retrytest.ResponseError("Kinesis", "GetRecords", status, api)
}

// opErr wraps a transport error as a client call returns it.
func opErr(err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: err}
}

func generic(code string) *smithy.GenericAPIError {
	return &smithy.GenericAPIError{Code: code, Message: "m"}
}

func TestClassify(t *testing.T) {
	msg := aws.String("m")
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{nil, OK},

		// The caller canceled.
		{context.Canceled, Canceled},
		{fmt.Errorf("get records: %w", context.Canceled), Canceled},
		{opErr(&smithy.CanceledError{Err: context.Canceled}), Canceled},
		{&aws.RequestCanceledError{Err: errors.New("request canceled")}, Canceled},

		// Out of time.
		{context.DeadlineExceeded, Timeout},
		{opErr(&smithy.CanceledError{Err: context.DeadlineExceeded}), Timeout},
		{sdkErr(408, generic("RequestTimeout")), Timeout},
		{sdkErr(400, generic("RequestTimeout")), Timeout}, // S3's idle upload
		{sdkErr(400, generic("RequestTimeoutException")), Timeout},
		{sdkErr(408, errors.New("no body")), Timeout},
		{opErr(&smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}}}), Timeout},

		// The connection was lost.
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), Connection},
		{errors.New("write tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection"), Connection},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}, Connection},
		{&net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}, Connection},
		{opErr(&smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "http://x", Err: io.EOF}}), Connection},
		{&url.Error{Op: "Post", URL: "http://x", Err: errors.New("dial tcp 127.0.0.1:9: connect: connection refused")}, Connection},
		{&net.DNSError{Err: "no such host", Name: "kinesis.invalid", IsNotFound: true}, Connection},
		{&net.DNSError{Err: "server misbehaving", Name: "kinesis.invalid", IsTemporary: true}, Connection},
		{opErr(&smithy.DeserializationError{Err: io.ErrUnexpectedEOF}), Connection},
		{fmt.Errorf("reading body: %w", io.EOF), Connection},

		// The service failed.
		{sdkErr(500, &ktypes.InternalFailureException{Message: msg}), ServerError},
		{&ktypes.InternalFailureException{Message: msg}, ServerError}, // in a fan-out event stream
		{sdkErr(503, generic("ServiceUnavailable")), ServerError},
		{sdkErr(502, generic("SomethingOdd")), ServerError},
		{sdkErr(500, errors.New("no API error at all")), ServerError},
		{sdkErr(500, generic("InternalError")), ServerError},
		{sdkErr(500, generic("InternalServerError")), ServerError},
		{sdkErr(424, &smtypes.InternalDependencyException{Message: msg}), ServerError},
		{sdkErr(500, &smtypes.InternalFailure{Message: msg}), ServerError},
		{sdkErr(503, &smtypes.ServiceUnavailable{Message: msg}), ServerError},
		{sdkErr(429, &smtypes.ModelNotReadyException{Message: msg}), ServerError},
		{&smithy.GenericAPIError{Code: "SomethingOdd", Fault: smithy.FaultServer}, ServerError},

		// Slow down.
		{sdkErr(400, &ktypes.ProvisionedThroughputExceededException{Message: msg}), Throttled},
		{&ktypes.ProvisionedThroughputExceededException{Message: msg}, Throttled},
		{sdkErr(400, &ktypes.LimitExceededException{Message: msg}), Throttled},
		{sdkErr(400, &ktypes.KMSThrottlingException{Message: msg}), Throttled},
		{sdkErr(400, &ddbtypes.ProvisionedThroughputExceededException{Message: msg}), Throttled},
		{sdkErr(400, &ddbtypes.RequestLimitExceeded{Message: msg}), Throttled},
		{sdkErr(400, &ddbtypes.ThrottlingException{Message: msg}), Throttled},
		{sdkErr(400, &snstypes.ThrottledException{Message: msg}), Throttled},
		{sdkErr(400, &sqstypes.KmsThrottled{Message: msg}), Throttled},
		{sdkErr(400, generic("ThrottlingException")), Throttled},
		{sdkErr(400, generic("Throttling")), Throttled}, // CloudWatch
		{sdkErr(503, generic("SlowDown")), Throttled},   // S3
		{sdkErr(429, generic("TooManyRequestsException")), Throttled},
		{sdkErr(400, generic("RequestThrottled")), Throttled},
		{sdkErr(429, generic("SomethingOdd")), Throttled},
		{sdkErr(429, errors.New("no API error at all")), Throttled},

		// A fresh iterator or token will do.
		{sdkErr(400, &ktypes.ExpiredIteratorException{Message: msg}), Expired},
		{fmt.Errorf("get records s/shardId-0: %w", &ktypes.ExpiredIteratorException{Message: msg}), Expired},
		{sdkErr(400, &ktypes.ExpiredNextTokenException{Message: msg}), Expired},

		// An operator must act.
		{&ktypes.AccessDeniedException{Message: msg}, Unavailable},
		{sdkErr(400, &ktypes.ResourceNotFoundException{Message: msg}), Unavailable},
		{sdkErr(400, &ktypes.KMSAccessDeniedException{Message: msg}), Unavailable},
		{sdkErr(400, &ktypes.KMSDisabledException{Message: msg}), Unavailable},
		{sdkErr(400, &ktypes.KMSInvalidStateException{Message: msg}), Unavailable},
		{sdkErr(400, &ktypes.KMSNotFoundException{Message: msg}), Unavailable},
		{sdkErr(400, &ktypes.KMSOptInRequired{Message: msg}), Unavailable},
		{fmt.Errorf("get shard iterator s/shardId-0: %w", &ktypes.AccessDeniedException{Message: msg}), Unavailable},
		{sdkErr(400, generic("UnrecognizedClientException")), Unavailable},
		{sdkErr(403, generic("AccessDenied")), Unavailable},
		{sdkErr(403, generic("SignatureDoesNotMatch")), Unavailable},
		{sdkErr(400, generic("ExpiredTokenException")), Unavailable},
		{sdkErr(404, generic("NoSuchBucket")), Unavailable},
		{sdkErr(400, &ddbtypes.ResourceNotFoundException{Message: msg}), Unavailable},
		{sdkErr(400, &sqstypes.QueueDoesNotExist{Message: msg}), Unavailable},
		{sdkErr(400, generic("AWS.SimpleQueueService.NonExistentQueue")), Unavailable},
		{sdkErr(400, &sqstypes.KmsAccessDenied{Message: msg}), Unavailable},
		{sdkErr(404, &snstypes.NotFoundException{Message: msg}), Unavailable},
		{sdkErr(400, &snstypes.AuthorizationErrorException{Message: msg}), Unavailable},
		{sdkErr(403, generic("SomethingOdd")), Unavailable},
		{sdkErr(401, errors.New("no API error at all")), Unavailable},
		{sdkErr(404, errors.New("no API error at all")), Unavailable},

		// This request is wrong.
		{&ktypes.InvalidArgumentException{Message: msg}, Invalid},
		{sdkErr(400, &ktypes.InvalidArgumentException{Message: msg}), Invalid},
		{sdkErr(400, &ktypes.ResourceInUseException{Message: msg}), Invalid},
		{&ktypes.ResourceInUseException{Message: msg}, Invalid},
		{sdkErr(400, &ddbtypes.ConditionalCheckFailedException{Message: msg}), Invalid},
		{sdkErr(400, generic("ValidationException")), Invalid},
		{sdkErr(400, &smtypes.ValidationError{Message: msg}), Invalid},
		{sdkErr(424, &smtypes.ModelError{Message: msg}), Invalid},
		{sdkErr(400, generic("SomethingOdd")), Invalid},
		{generic("ValidationException"), Invalid},
		{&smithy.GenericAPIError{Code: "SomethingOdd", Fault: smithy.FaultClient}, Invalid},
		{opErr(smithy.InvalidParamsError{Context: "PutRecordsInput"}), Invalid},

		// Nothing recognised.
		{errors.New("boom"), Unknown},
		{generic("SomethingOdd"), Unknown},
		{fmt.Errorf("put: %w", generic("SomethingOdd")), Unknown},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestClassRetryableAndPermanent(t *testing.T) {
	for _, tc := range []struct {
		c                    Class
		name                 string
		retryable, permanent bool
	}{
		{OK, "ok", false, false},
		{Unknown, "unknown", true, false},
		{Canceled, "canceled", false, false},
		{Timeout, "timeout", true, false},
		{Connection, "connection", true, false},
		{ServerError, "server_error", true, false},
		{Throttled, "throttled", true, false},
		{Expired, "expired", true, false},
		{Unavailable, "unavailable", false, true},
		{Invalid, "invalid", false, true},
		{Class(-1), "unknown", true, false},
		{Class(99), "unknown", true, false},
	} {
		if tc.c.String() != tc.name || tc.c.Retryable() != tc.retryable || tc.c.Permanent() != tc.permanent {
			t.Errorf("%d: %q retryable %v permanent %v, want %q %v %v", int(tc.c), tc.c, tc.c.Retryable(), tc.c.Permanent(),
				tc.name, tc.retryable, tc.permanent)
		}
	}
}
