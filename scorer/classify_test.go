package scorer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemakerruntime/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/streamscore/streamscore/internal/retry/retrytest"
)

func invokeErr(status int, api error) error {
	return retrytest.ResponseError("SageMaker Runtime", "InvokeEndpoint", status, api)
}

// The metric labels, retries and breaker exclusions follow from these.
func TestClassifyLabels(t *testing.T) {
	msg := "m"
	m := &msg
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&timeoutError{after: time.Second, err: errors.New("slow")}, "timeout"},
		{fmt.Errorf("invoke: %w", context.DeadlineExceeded), "timeout"},
		{invokeErr(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), "throttled"},
		{invokeErr(429, &smithy.GenericAPIError{Code: "TooManyRequestsException"}), "throttled"},
		{invokeErr(429, errors.New("unmodeled")), "throttled"},
		{invokeErr(400, &smithy.GenericAPIError{Code: "RequestLimitExceeded"}), "throttled"},
		{invokeErr(503, &smtypes.ServiceUnavailable{Message: m}), "server_error"},
		{invokeErr(500, &smtypes.InternalFailure{Message: m}), "server_error"},
		{invokeErr(424, &smtypes.InternalDependencyException{Message: m}), "server_error"},
		{invokeErr(429, &smtypes.ModelNotReadyException{Message: m}), "server_error"},
		{invokeErr(502, errors.New("bad gateway")), "server_error"},
		{invokeErr(400, &smtypes.ValidationError{Message: m}), "client_error"},
		{invokeErr(424, &smtypes.ModelError{Message: m}), "client_error"},
		{invokeErr(403, &smithy.GenericAPIError{Code: "AccessDeniedException"}), "client_error"},
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), "connection_error"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}, "connection_error"},
		{&smithyhttp.RequestSendError{Err: io.EOF}, "connection_error"},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, "connection_error"},
		// An HTTP 408 is the endpoint's slowness (it used to be a
		// client_error, neither retried nor counted by the breaker).
		{invokeErr(408, errors.New("request timeout")), "connection_error"},
		{context.Canceled, "error"},
		{errors.New("boom"), "error"},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
