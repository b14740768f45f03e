// Package retrytest builds AWS errors as the SDK's clients return them, so
// the tests of code that classifies them (internal/retry and its callers)
// need no server to meet a throttle, a 5xx or a refusal.
package retrytest

import (
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ResponseError wraps err (usually a smithy API error: a service's typed
// exception or a *smithy.GenericAPIError) as a call to service's operation
// returns it after an HTTP answer with the given status: the operation
// error around the HTTP response error.
func ResponseError(service, operation string, status int, err error) error {
	return &smithy.OperationError{ServiceID: service, OperationName: operation, Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err},
		RequestID:     "retrytest",
	}}
}
