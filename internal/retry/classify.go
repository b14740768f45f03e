package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// Class says what a failed call's error means for calling again.
type Class int

// The classes, from the most specific cause Classify finds.
const (
	// OK: there was no error.
	OK Class = iota
	// Unknown: nothing in the error is recognised. It counts as
	// retryable: giving up on an error nobody recognised would drop data
	// or stop a shard for what may be a blip.
	Unknown
	// Canceled: the caller's context was canceled; nobody wants the
	// answer any more.
	Canceled
	// Timeout: the call ran out of time (a deadline, an HTTP 408, a
	// RequestTimeout code, a network timeout).
	Timeout
	// Connection: the request or its answer was lost on the way
	// (connection reset or refused, a dial or DNS failure, EOF mid-answer).
	Connection
	// ServerError: the service failed the call (HTTP 5xx, InternalFailure,
	// ServiceUnavailable, a SageMaker model not ready).
	ServerError
	// Throttled: the service asked us to slow down (the SDK's throttle
	// codes, Kinesis' ProvisionedThroughputExceeded and LimitExceeded,
	// KMS throttling, HTTP 429).
	Throttled
	// Expired: a shard iterator or a pagination token the request carried
	// has expired; calling again with a fresh one succeeds, the same
	// request never will.
	Expired
	// Unavailable: nothing is wrong with the request, but the account or
	// the resource cannot serve it until an operator acts: access denied,
	// credentials refused, a stream, table, bucket, queue or topic
	// missing, a KMS key disabled or out of reach (HTTP 401, 403, 404).
	// Retrying slowly recovers once it is fixed.
	Unavailable
	// Invalid: the service refused this request itself (validation, an
	// invalid argument, a failed condition, any other 4xx), or the SDK
	// refused to send it. The same request fails the same way.
	Invalid
)

var classNames = [...]string{"ok", "unknown", "canceled", "timeout", "connection", "server_error",
	"throttled", "expired", "unavailable", "invalid"}

// String names the class for logs and metric labels.
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Retryable reports whether calling again after a backoff may succeed
// without anyone acting (Expired only with a fresh iterator or token).
func (c Class) Retryable() bool {
	switch c {
	case OK, Canceled, Unavailable, Invalid:
		return false
	}
	return true
}

// Permanent reports whether the call will keep failing until something
// outside the process changes: the request (Invalid) or the account or
// resource (Unavailable).
func (c Class) Permanent() bool { return c == Unavailable || c == Invalid }

// Error codes the SDK's own lists do not cover, by class. Codes are
// compared exactly; KMS and throttling codes by pattern (see Classify).
var (
	expiredCodes = codes("ExpiredIteratorException", "ExpiredNextTokenException")
	serverCodes  = codes("InternalFailure", "InternalFailureException", "InternalError", "InternalServerError",
		"ServiceUnavailable", "ServiceUnavailableException", "InternalDependencyException",
		// SageMaker answers 429 while an endpoint's model loads: the
		// endpoint's trouble, not a request to slow down.
		"ModelNotReadyException")
	unavailableCodes = codes(
		// Credentials and permissions.
		"AccessDenied", "AccessDeniedException", "AuthorizationError", "Forbidden", "UnrecognizedClientException",
		"InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
		"MissingAuthenticationToken", "InvalidSecurity", "AuthFailure", "OptInRequired",
		// A missing resource.
		"ResourceNotFoundException", "NoSuchBucket", "NotFound", "NotFoundException",
		"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
	invalidCodes = codes("InvalidArgumentException", "ValidationException", "ValidationError",
		"InvalidParameterException", "InvalidParameterValue", "InvalidParameterValueException", "SerializationException")
)

func codes(cs ...string) map[string]bool {
	m := make(map[string]bool, len(cs))
	for _, c := range cs {
		m[c] = true
	}
	return m
}

// Classify names what err means for calling again. It looks, in order,
// at the caller canceling, the AWS error code (which names the cause most
// precisely, and is all an event-stream exception carries), the HTTP
// status, the modeled error's fault, and the transport: deadlines and
// timeouts, then connection failures. A wrapped error is classified by
// what it wraps.
func Classify(err error) Class {
	if err == nil {
		return OK
	}
	if isCanceled(err) {
		return Canceled
	}
	if c := classifyAPI(err); c != Unknown {
		return c
	}
	var v interface{ HTTPStatusCode() int }
	if errors.As(err, &v) {
		switch s := v.HTTPStatusCode(); {
		case s == 429:
			return Throttled
		case s == 408:
			return Timeout
		case s >= 500:
			return ServerError
		case s == 401 || s == 403 || s == 404:
			return Unavailable
		case s >= 400:
			return Invalid
		}
	}
	if c := classifyFault(err); c != Unknown {
		return c
	}
	if errors.Is(err, context.DeadlineExceeded) || (awsretry.TimeouterError{}).IsErrorTimeout(err) == aws.TrueTernary {
		return Timeout
	}
	// The SDK's connection check knows resets, refusals, dial and DNS
	// failures and anything sending the request failed on; an answer cut
	// short is a lost connection too.
	var ne net.Error
	if (awsretry.RetryableConnectionError{}).IsErrorRetryable(err) != aws.UnknownTernary ||
		errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Connection
	}
	var ip smithy.InvalidParamsError
	if errors.As(err, &ip) {
		return Invalid
	}
	return Unknown
}

// isCanceled reports a canceled context, directly or as the SDK's
// canceled-request error, unless the cancellation was a deadline (which
// is a timeout: per-call deadlines are the caller's way to bound a call).
func isCanceled(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, context.Canceled) || awsretry.NoRetryCanceledError{}.IsErrorRetryable(err) == aws.FalseTernary
}

// requestTimeouts are the codes the SDK retries as timeouts
// (RequestTimeout, RequestTimeoutException).
var requestTimeouts = awsretry.RetryableErrorCode{Codes: awsretry.DefaultRetryableErrorCodes}

// throttles is the SDK's throttle check: its throttle codes, and an HTTP
// 429 whose error the SDK could not model.
var throttles = awsretry.IsErrorThrottles(awsretry.DefaultThrottles)

// classifyAPI classifies by the AWS error code; Unknown when err carries
// no API error or its code says nothing.
func classifyAPI(err error) Class {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return Unknown
	}
	code := ae.ErrorCode()
	switch {
	case expiredCodes[code]:
		return Expired
	case serverCodes[code]:
		return ServerError
	case requestTimeouts.IsErrorRetryable(err) == aws.TrueTernary:
		return Timeout
	case throttles.IsErrorThrottle(err) == aws.TrueTernary,
		// Service variants the SDK's list misses: KMSThrottlingException,
		// SQS's KmsThrottled, TooManyRequests without "Exception".
		strings.Contains(code, "Throttl"), strings.Contains(code, "TooManyRequests"):
		return Throttled
	case unavailableCodes[code],
		// Every KMS error other than throttling (AccessDenied, Disabled,
		// InvalidState, NotFound, OptInRequired; SQS spells them Kms…) is
		// the key's state, which an operator fixes.
		strings.HasPrefix(strings.ToUpper(code), "KMS"):
		return Unavailable
	case invalidCodes[code]:
		return Invalid
	}
	return Unknown
}

// classifyFault classifies a modeled error the code and the HTTP status
// left unnamed (an event-stream exception has no status) by its fault.
func classifyFault(err error) Class {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return Unknown
	}
	switch ae.ErrorFault() {
	case smithy.FaultServer:
		return ServerError
	case smithy.FaultClient:
		// A modeled client error not named above (ResourceInUse,
		// ConditionalCheckFailed, ...): this request was refused.
		return Invalid
	}
	return Unknown
}
