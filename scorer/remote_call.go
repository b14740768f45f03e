package scorer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	"github.com/aws/smithy-go"
	"github.com/sony/gobreaker/v2"

	"github.com/streamscore/streamscore/internal/retry"
)

// call sends one request, retrying with jittered backoff, through its
// target's breaker.
func (r *Remote) call(ctx context.Context, ch *chunk, rows []int32, res *Result) error {
	t := ch.t
	var lastErr error
	attempts := 0
	for {
		if attempts > 0 && !retry.Sleep(ctx, r.backoff.Delay(attempts-1)) {
			return ctx.Err()
		}
		attempts++
		body, err := t.cb.Execute(func() ([]byte, error) { return r.invoke(ctx, t, ch.body.Bytes()) })
		if err == nil {
			if perr := r.dec.parse(body, rows, res.Scores); perr != nil {
				// A malformed answer is the endpoint's fault, but retrying
				// will not fix it.
				return fmt.Errorf("endpoint %s: %w", t.label, perr)
			}
			return nil
		}
		lastErr = err
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			r.cfg.Metrics.request(t.label, "rejected")
			return fmt.Errorf("endpoint %s: %w", t.label, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c := classify(err); c == "client_error" {
			return fmt.Errorf("endpoint %s rejected the request: %w", t.label, err)
		}
		var nr *notReadyError
		if errors.As(err, &nr) && !nr.final {
			// Within the cold-start allowance: wait for the model, past
			// MaxAttempts (the allowance bounds it).
			continue
		}
		if attempts >= r.cfg.MaxAttempts {
			break
		}
	}
	return fmt.Errorf("endpoint %s: %d attempts failed: %w", t.label, attempts, lastErr)
}

func (r *Remote) invoke(ctx context.Context, t *target, body []byte) ([]byte, error) {
	start := time.Now()
	timeout := r.cfg.Timeout
	cold := r.cfg.ColdStartTimeout > 0 && t.cold(start.UnixNano(), r.cfg.ColdAfterIdle)
	if cold {
		timeout = max(timeout, r.cfg.ColdStartTimeout)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in := &sagemakerruntime.InvokeEndpointInput{
		EndpointName: aws.String(r.cfg.Endpoint),
		Body:         body,
		ContentType:  aws.String(r.cfg.ContentType),
		Accept:       aws.String(r.cfg.Accept),
		TargetModel:  t.model,
	}
	if r.cfg.TargetVariant != "" {
		in.TargetVariant = aws.String(r.cfg.TargetVariant)
	}
	if r.cfg.CustomAttributes != "" {
		in.CustomAttributes = aws.String(r.cfg.CustomAttributes)
	}
	if r.cfg.InferenceComponent != "" {
		in.InferenceComponentName = aws.String(r.cfg.InferenceComponent)
	}
	if r.cfg.TargetContainerHostname != "" {
		in.TargetContainerHostname = aws.String(r.cfg.TargetContainerHostname)
	}
	// Retries are ours (so the breaker and the per-call timeout see every
	// attempt), not the SDK's.
	out, err := r.c.InvokeEndpoint(cctx, in, func(o *sagemakerruntime.Options) { o.Retryer = aws.NopRetryer{} })
	if err != nil {
		now := time.Now().UnixNano()
		if cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = &timeoutError{after: timeout, cold: cold, err: err}
		}
		outcome := classify(err)
		r.cfg.Metrics.request(t.label, outcome)
		switch {
		case outcome == "timeout":
			t.timeouts.Add(1)
			if cold {
				t.coldSpent.Store(true)
			}
		case modelNotReady(err):
			err = &notReadyError{final: t.notReadyFinal(now, r.cfg.ColdStartTimeout), err: err}
		case outcome == "client_error":
		default:
			t.timeouts.Store(0)
		}
		t.lastErr.Store(&errBox{err})
		return nil, err
	}
	t.answered(time.Now().UnixNano())
	r.cfg.Metrics.request(t.label, "ok")
	r.cfg.Metrics.observe(t.label, time.Since(start).Seconds())
	return out.Body, nil
}

// timeoutError marks a call that exceeded the per-call timeout.
type timeoutError struct {
	after time.Duration
	cold  bool
	err   error
}

func (e *timeoutError) Error() string {
	if e.cold {
		return fmt.Sprintf("no answer within the cold-start allowance of %v: %v", e.after, e.err)
	}
	return fmt.Sprintf("no answer within %v: %v", e.after, e.err)
}
func (e *timeoutError) Unwrap() error { return e.err }

// ErrRemoteTimeout matches (errors.Is) calls that exceeded the per-call timeout.
var ErrRemoteTimeout = errors.New("sagemaker call timed out")

func (e *timeoutError) Is(target error) bool { return target == ErrRemoteTimeout }

// modelNotReady reports SageMaker's ModelNotReadyException: a serverless
// endpoint still provisioning, or a multi-model endpoint still loading the
// target model.
func modelNotReady(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ModelNotReadyException"
}

// notReadyError marks a ModelNotReadyException; final once the target has
// been not ready for longer than the cold-start allowance.
type notReadyError struct {
	final bool
	err   error
}

func (e *notReadyError) Error() string { return "model not ready: " + e.err.Error() }
func (e *notReadyError) Unwrap() error { return e.err }

// excluded says which failures the breaker does not count: rejections of
// our own input say nothing about the endpoint's health, the caller giving
// up neither, and a model still loading within its allowance is expected.
func excluded(err error) bool {
	var nr *notReadyError
	if errors.As(err, &nr) {
		return !nr.final
	}
	return errors.Is(err, context.Canceled) || classify(err) == "client_error"
}

// classify names the outcome of a failed call for retries, the breaker and
// metrics, from the shared classification: throttled, server_error
// (ModelNotReadyException included), timeout and connection errors are the
// endpoint's trouble and are retried; client_error (our request was
// refused as invalid, or the endpoint is out of reach for this account) is
// not. A timeout here is
// the per-call deadline only; a network timeout is a connection_error.
func classify(err error) string {
	if err == nil {
		return "ok"
	}
	var te *timeoutError
	if errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	switch retry.Classify(err) {
	case retry.Throttled:
		return "throttled"
	case retry.ServerError:
		return "server_error"
	case retry.Timeout, retry.Connection:
		return "connection_error"
	case retry.Invalid, retry.Unavailable:
		return "client_error"
	}
	return "error"
}

// splitTemplate splits a target model template at its {column}
