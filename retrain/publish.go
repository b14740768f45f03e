package retrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/streamscore/streamscore/internal/retry"
)

// The Publisher's defaults.
const (
	// DefaultEventBus is the account's default bus, which every account
	// has; a rule on it needs no bus of its own.
	DefaultEventBus = "default"
	// DefaultAttempts is how many times an event is sent before its
	// failure is reported: with the default backoff, about 10 s of
	// throttling or server errors.
	DefaultAttempts = 6
	// DefaultBackoffBase and DefaultBackoffMax bound the waits between
	// attempts (full jitter, doubling).
	DefaultBackoffBase = 200 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
)

// PutEventsAPI is the one EventBridge call the Publisher makes;
// *eventbridge.Client has it.
type PutEventsAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// PublisherOptions configure a Publisher; zero fields take the defaults.
type PublisherOptions struct {
	// EventBus is the bus's name or ARN; default DefaultEventBus.
	EventBus string
	// Attempts is how many times an event is sent before its failure is
	// reported; default DefaultAttempts.
	Attempts int
	// BackoffBase and BackoffMax bound the waits between attempts.
	BackoffBase, BackoffMax time.Duration
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

// Publisher puts the flywheel's events on an EventBridge bus.
type Publisher struct {
	api      PutEventsAPI
	bus      string
	attempts int
	backoff  retry.Policy
	log      *slog.Logger
}

// NewPublisher returns a Publisher sending through api.
func NewPublisher(api PutEventsAPI, o PublisherOptions) *Publisher {
	if o.EventBus == "" {
		o.EventBus = DefaultEventBus
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Publisher{api: api, bus: o.EventBus, attempts: o.Attempts,
		backoff: retry.Policy{Base: o.BackoffBase, Cap: o.BackoffMax, Jitter: retry.FullJitter}, log: o.Logger}
}

// EventBus is the bus the Publisher sends to.
func (p *Publisher) EventBus() string { return p.bus }

// EventBridge's limits on one PutEvents call.
const (
	maxEntries   = 10
	maxBatchSize = 256 << 10 // the entries' Source, DetailType and Detail bytes together
)

// EntryError is an event EventBridge refused (a PutEvents answer's failed
// entry) or that could not be sent at all.
type EntryError struct {
	// Index is the event's place among Publish's arguments.
	Index      int
	DetailType string
	// Subject names the event's pipeline and window or scorer.
	Subject string
	// Code and Message are EventBridge's, or ours for an event not sent.
	Code, Message string
	// Attempts is how many times it was sent.
	Attempts int
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("retrain: event %d (%s, %s) refused after %d attempt(s): %s: %s",
		e.Index, e.DetailType, e.Subject, e.Attempts, e.Code, e.Message)
}

// Publish puts the events on the bus, in batches of EventBridge's limits,
// and returns their event ids in the order given ("" for one not put).
// A whole call that fails retryably (throttling, 5xx, a lost connection)
// is sent again after a backoff, and so is each entry EventBridge failed
// for throttling or an internal error; every event still not put at the
// end is an *EntryError in the returned error (errors.Join), and a call
// that failed for good (access denied, no such bus) wraps the SDK's error.
// PutEvents is not idempotent: an answer lost on the way can repeat an
// event, which a consumer drops by its request_id.
func (p *Publisher) Publish(ctx context.Context, details ...Detail) ([]string, error) {
	ids := make([]string, len(details))
	var errs []error
	var batch []int
	var entries []ebtypes.PutEventsRequestEntry
	size := 0
	flush := func() {
		if len(batch) > 0 {
			errs = append(errs, p.put(ctx, details, batch, entries, ids)...)
		}
		batch, entries, size = nil, nil, 0
	}
	for i, d := range details {
		body, err := json.Marshal(d)
		if err != nil {
			errs = append(errs, &EntryError{Index: i, DetailType: d.DetailType(), Subject: d.Subject(), Code: "MarshalFailed", Message: err.Error()})
			continue
		}
		n := len(Source) + len(d.DetailType()) + len(body)
		if n >= maxBatchSize {
			errs = append(errs, &EntryError{Index: i, DetailType: d.DetailType(), Subject: d.Subject(), Code: "TooLarge",
				Message: fmt.Sprintf("%d bytes, EventBridge takes less than %d", n, maxBatchSize)})
			continue
		}
		if len(batch) == maxEntries || size+n >= maxBatchSize {
			flush()
		}
		batch = append(batch, i)
		entries = append(entries, ebtypes.PutEventsRequestEntry{Source: aws.String(Source), DetailType: aws.String(d.DetailType()),
			Detail: aws.String(string(body)), EventBusName: aws.String(p.bus)})
		size += n
	}
	flush()
	return ids, errors.Join(errs...)
}

// put sends one batch until every entry is put, refused for good, or out
// of attempts; batch maps entries to their index in details.
func (p *Publisher) put(ctx context.Context, details []Detail, batch []int, entries []ebtypes.PutEventsRequestEntry, ids []string) []error {
	b := retry.NewBackoff(p.backoff)
	var errs []error
	for attempt := 1; ; attempt++ {
		out, err := p.api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		if err == nil && len(out.Entries) != len(entries) {
			err = fmt.Errorf("PutEvents answered %d entries for %d sent", len(out.Entries), len(entries))
		}
		if err != nil {
			c := retry.Classify(err)
			if !c.Retryable() || attempt >= p.attempts {
				return append(errs, fmt.Errorf("retrain: PutEvents of %s to bus %s failed (%s) after %d attempt(s): %w",
					p.names(details, batch), p.bus, c, attempt, err))
			}
			p.log.Warn("retrain: PutEvents failed; retrying", "bus", p.bus, "events", len(entries), "class", c.String(), "attempt", attempt, "err", err)
			if !b.Wait(ctx) {
				return append(errs, fmt.Errorf("retrain: PutEvents of %s to bus %s: %w", p.names(details, batch), p.bus, ctx.Err()))
			}
			continue
		}
		var againIdx []int
		var againCodes []string
		var again []ebtypes.PutEventsRequestEntry
		for j, r := range out.Entries {
			i := batch[j]
			code := aws.ToString(r.ErrorCode)
			if code == "" {
				ids[i] = aws.ToString(r.EventId)
				p.log.Info("retrain: event published", "bus", p.bus, "detail_type", details[i].DetailType(), "subject", details[i].Subject(), "event_id", ids[i])
				continue
			}
			if entryRetryable(code, aws.ToString(r.ErrorMessage)) && attempt < p.attempts {
				againIdx, againCodes, again = append(againIdx, i), append(againCodes, code), append(again, entries[j])
				continue
			}
			errs = append(errs, &EntryError{Index: i, DetailType: details[i].DetailType(), Subject: details[i].Subject(),
				Code: code, Message: aws.ToString(r.ErrorMessage), Attempts: attempt})
		}
		if len(again) == 0 {
			return errs
		}
		p.log.Warn("retrain: EventBridge failed entries; retrying them", "bus", p.bus, "events", len(again), "attempt", attempt)
		if !b.Wait(ctx) {
			for k, i := range againIdx {
				errs = append(errs, &EntryError{Index: i, DetailType: details[i].DetailType(), Subject: details[i].Subject(),
					Code: againCodes[k], Message: "not retried: " + ctx.Err().Error(), Attempts: attempt})
			}
			return errs
		}
		batch, entries = againIdx, again
	}
}

// entryRetryable reports whether a failed entry's error code is worth
// sending again: throttling, an internal error or a timeout. Every other
// code (a malformed detail, no permission for the source) fails the same
// way again.
func entryRetryable(code, message string) bool {
	switch retry.Classify(&smithy.GenericAPIError{Code: code, Message: message}) {
	case retry.Throttled, retry.ServerError, retry.Timeout:
		return true
	}
	return false
}

// names lists a batch's events for an error.
func (p *Publisher) names(details []Detail, batch []int) string {
	s := make([]string, len(batch))
	for k, i := range batch {
		s[k] = fmt.Sprintf("event %d (%s, %s)", i, details[i].DetailType(), details[i].Subject())
	}
	return strings.Join(s, ", ")
}
