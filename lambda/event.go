package lambda

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/streamscore/streamscore/sinks"
)

// EventError says why an event cannot be scored. Field names the event's
// field at fault, empty when the event as a whole is (not a JSON object).
// A direct invocation gets it back as the function error (errorType
// "EventError"); from a Kinesis stream it is the dead letter's detail.
type EventError struct {
	Field  string
	Reason string
	// cause is what errors.Is matches (ErrNotLogin).
	cause error
}

func (e *EventError) Error() string {
	if e.Field == "" {
		return "event: " + e.Reason
	}
	return fmt.Sprintf("event field %q: %s", e.Field, e.Reason)
}

// Unwrap lets errors.Is(err, ErrNotLogin) tell a valid event of another
// type from a malformed one.
func (e *EventError) Unwrap() error { return e.cause }

// ErrNotLogin is wrapped by the error for a direct invocation whose event
// is of another type. From a stream such events are skipped, not errors.
var ErrNotLogin = errors.New("not a login event")

// fields says where a login event keeps what the function needs.
type fields struct {
	entity, typ, login string
}

// loginEvent is what the function needs of an app event.
type loginEvent struct {
	entity string
	login  bool
	// typ is the event type as sent, for the not-a-login message.
	typ string
}

// parseEvent reads one app event. The entity is keyed as the pipeline's
// decoder (windowing.Decoder) keys windows, so the feature table lookup
// finds what the pipeline wrote: a string as its unescaped text, a number
// as its literal text (user_id 18273 keys "18273"). A malformed event is an
// *EventError naming the field.
func parseEvent(data []byte, f fields) (loginEvent, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return loginEvent{}, &EventError{Reason: "not a JSON object: " + jsonProblem(data, err)}
	}
	return eventFromObject(obj, f)
}

func eventFromObject(obj map[string]json.RawMessage, f fields) (loginEvent, error) {
	var ev loginEvent
	raw, ok := obj[f.entity]
	switch {
	case !ok:
		return ev, &EventError{Field: f.entity, Reason: "missing"}
	case isNull(raw):
		return ev, &EventError{Field: f.entity, Reason: "null"}
	}
	switch raw[0] {
	case '"':
		if !utf8.Valid(raw) {
			return ev, &EventError{Field: f.entity, Reason: "not valid UTF-8"}
		}
		if err := json.Unmarshal(raw, &ev.entity); err != nil {
			return ev, &EventError{Field: f.entity, Reason: err.Error()}
		}
		if ev.entity == "" {
			return ev, &EventError{Field: f.entity, Reason: "empty"}
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		ev.entity = string(raw)
	default:
		return ev, &EventError{Field: f.entity, Reason: "want a string or a number, got " + jsonKind(raw)}
	}
	if len(ev.entity) > sinks.MaxEntityBytes {
		return ev, &EventError{Field: f.entity, Reason: fmt.Sprintf("%d bytes, over DynamoDB's %d-byte key limit", len(ev.entity), sinks.MaxEntityBytes)}
	}
	raw, ok = obj[f.typ]
	switch {
	case !ok:
		return ev, &EventError{Field: f.typ, Reason: "missing"}
	case raw[0] != '"':
		return ev, &EventError{Field: f.typ, Reason: "want a string, got " + jsonKind(raw)}
	}
	if err := json.Unmarshal(raw, &ev.typ); err != nil {
		return ev, &EventError{Field: f.typ, Reason: err.Error()}
	}
	ev.login = ev.typ == f.login
	return ev, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(raw, []byte("null")) }

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// jsonProblem describes why data is not a JSON object, briefly.
func jsonProblem(data []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	case errors.As(err, &te):
		return "got " + te.Value
	case err != nil:
		return err.Error()
	case len(bytes.TrimSpace(data)) == 0:
		return "empty"
	}
	return "got null"
}

// invocation is one decoded payload: a direct event or a Kinesis batch.
type invocation struct {
	kinesis *events.KinesisEvent
	direct  map[string]json.RawMessage
}

// decodeInvocation tells the two shapes apart: an object with a "Records"
// array is a Kinesis event source mapping batch, anything else a direct
// event. The error of a batch Lambda could not have sent names the record
// and field (the whole batch is then retried, nothing is lost).
func decodeInvocation(payload []byte) (invocation, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil || obj == nil {
		return invocation{}, &EventError{Reason: "not a JSON object: " + jsonProblem(payload, err)}
	}
	recs, ok := obj["Records"]
	if !ok {
		return invocation{direct: obj}, nil
	}
	if recs[0] != '[' {
		return invocation{}, &EventError{Field: "Records", Reason: "want an array of Kinesis records, got " + jsonKind(recs)}
	}
	var ev events.KinesisEvent
	if err := json.Unmarshal(recs, &ev.Records); err != nil {
		return invocation{}, &EventError{Field: "Records", Reason: "not Kinesis records: " + err.Error()}
	}
	for i := range ev.Records {
		r := &ev.Records[i]
		field := func(name string) string { return "Records[" + strconv.Itoa(i) + "]." + name }
		if r.EventSource != "aws:kinesis" {
			return invocation{}, &EventError{Field: field("eventSource"), Reason: fmt.Sprintf("%q is not aws:kinesis: this function takes login events directly or from a Kinesis event source mapping", r.EventSource)}
		}
		if r.Kinesis.SequenceNumber == "" {
			return invocation{}, &EventError{Field: field("kinesis.sequenceNumber"), Reason: "missing"}
		}
	}
	return invocation{kinesis: &ev}, nil
}

// streamAndShard reads the stream name from the event source ARN
// (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME) and the shard from the
// event id (shardId-000000000000:SEQUENCE).
func streamAndShard(r *events.KinesisEventRecord) (stream, shard string) {
	stream = r.EventSourceArn
	if _, name, ok := strings.Cut(r.EventSourceArn, ":stream/"); ok {
		stream = name
	}
	shard, _, _ = strings.Cut(r.EventID, ":")
	return stream, shard
}
