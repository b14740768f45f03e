package lambda

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/aws-lambda-go/events"

	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

var churnFields = fields{entity: "user_id", typ: "event_type", login: "login"}

// pipelineEntity decodes rec with the pipeline's own decoder, configured
// as examples/churn.yaml's app_event schema, and returns the entity it
// keys the user's windows (and so the feature table item) by.
func pipelineEntity(t testing.TB, rec []byte) (string, bool) {
	t.Helper()
	d, err := windowing.NewDecoder(windowing.Schema{
		Name: "app_event", Entity: "user_id", Time: "ts", TimeFormat: windowing.TimeRFC3339,
		Fields: []windowing.FieldSpec{{Name: "event_type", Type: windowing.TypeString}, {Name: "session_id", Type: windowing.TypeString},
			{Name: "amount", Type: windowing.TypeFloat64}, {Name: "platform", Type: windowing.TypeString}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if err := d.Append(rec, 0); err != nil {
		return "", false
	}
	b := d.NewRecordBatch()
	defer b.Release()
	return b.Column(0).(*array.String).Value(0), true
}

func TestParseEventKeysUsersAsThePipelineDoes(t *testing.T) {
	for _, rec := range []string{
		`{"user_id":"user-42","event_type":"login","ts":"2026-11-24T08:00:00Z"}`,
		`{"user_id":18273,"event_type":"login","ts":"2026-11-24T08:00:00Z"}`,
		`{"user_id":-7.5e3,"event_type":"login","ts":"2026-11-24T08:00:00Z"}`,
		`{"ts":"2026-11-24T08:00:00Z", "event_type" : "login" , "user_id" : "caf\u00e9 \"q\" \ud83d\ude00" }`,
		`{"user_id":"u","event_type":"purchase","amount":12.5,"ts":"2026-11-24T08:00:00Z","extra":{"nested":[1,2,{"x":null}]}}`,
	} {
		ev, err := parseEvent([]byte(rec), churnFields)
		if err != nil {
			t.Errorf("%s: %v", rec, err)
			continue
		}
		want, ok := pipelineEntity(t, []byte(rec))
		if !ok {
			t.Fatalf("the pipeline's decoder rejects %s", rec)
		}
		if ev.entity != want {
			t.Errorf("%s: entity %q, the pipeline keys it %q", rec, ev.entity, want)
		}
		if ev.login != strings.Contains(rec, `"login"`) {
			t.Errorf("%s: login = %v", rec, ev.login)
		}
	}
}

func TestParseEventNamesTheBadField(t *testing.T) {
	for _, tc := range []struct{ rec, field, reason string }{
		{`not json`, "", "not a JSON object: invalid character"},
		{`["user_id"]`, "", "not a JSON object: got array"},
		{`null`, "", "not a JSON object: got null"},
		{``, "", "not a JSON object"},
		{`{"event_type":"login"}`, "user_id", "missing"},
		{`{"user_id":null,"event_type":"login"}`, "user_id", "null"},
		{`{"user_id":"","event_type":"login"}`, "user_id", "empty"},
		{`{"user_id":true,"event_type":"login"}`, "user_id", "want a string or a number, got a boolean"},
		{`{"user_id":{"id":1},"event_type":"login"}`, "user_id", "want a string or a number, got an object"},
		{`{"user_id":"` + strings.Repeat("x", 2049) + `","event_type":"login"}`, "user_id", "2049 bytes, over DynamoDB's 2048-byte key limit"},
		{"{\"user_id\":\"\xff\",\"event_type\":\"login\"}", "user_id", "not valid UTF-8"},
		{`{"user_id":"u1"}`, "event_type", "missing"},
		{`{"user_id":"u1","event_type":3}`, "event_type", "want a string, got a number"},
		{`{"user_id":"u1","event_type":null}`, "event_type", "want a string, got null"},
	} {
		_, err := parseEvent([]byte(tc.rec), churnFields)
		var ee *EventError
		if !errors.As(err, &ee) || ee.Field != tc.field || !strings.Contains(ee.Reason, tc.reason) {
			t.Errorf("%.60s: error %v, want field %q saying %q", tc.rec, err, tc.field, tc.reason)
		}
	}
}

func TestDecodeInvocationTellsShapesApart(t *testing.T) {
	inv, err := decodeInvocation([]byte(`{"user_id":"u1","event_type":"login"}`))
	if err != nil || inv.kinesis != nil || inv.direct == nil {
		t.Fatalf("direct event: %+v %v", inv, err)
	}
	batch := kinesisEvent("app-events", "shardId-000000000003", [][]byte{[]byte(`{"user_id":"u1","event_type":"login"}`)})
	inv, err = decodeInvocation(batch)
	if err != nil || inv.kinesis == nil || len(inv.kinesis.Records) != 1 {
		t.Fatalf("kinesis event: %+v %v", inv, err)
	}
	r := &inv.kinesis.Records[0]
	if string(r.Kinesis.Data) != `{"user_id":"u1","event_type":"login"}` {
		t.Errorf("data %q", r.Kinesis.Data)
	}
	if s, sh := streamAndShard(r); s != "app-events" || sh != "shardId-000000000003" {
		t.Errorf("stream %q shard %q", s, sh)
	}
	for _, tc := range []struct{ payload, field string }{
		{`{"Records":{}}`, "Records"},
		{`{"Records":null}`, "Records"},
		{`{"Records":[{"eventSource":"aws:sqs","body":"x"}]}`, "Records[0].eventSource"},
		{`{"Records":[{"eventSource":"aws:kinesis","kinesis":{"data":"e30="}}]}`, "Records[0].kinesis.sequenceNumber"},
		{`{"Records":[{"eventSource":"aws:kinesis","kinesis":{"sequenceNumber":"1","data":"%%%"}}]}`, "Records"},
	} {
		_, err := decodeInvocation([]byte(tc.payload))
		var ee *EventError
		if !errors.As(err, &ee) || ee.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.payload, err, tc.field)
		}
	}
}

// kinesisEvent builds the payload a Kinesis event source mapping sends:
// one record per data, sequence numbers 1000, 1001, ...
func kinesisEvent(stream, shard string, data [][]byte) []byte {
	ev := events.KinesisEvent{}
	for i, d := range data {
		seq := fmt.Sprintf("4963%052d", 1000+i)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			AwsRegion: "us-east-1", EventID: shard + ":" + seq, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
			EventSourceArn: "arn:aws:kinesis:us-east-1:000000000000:stream/" + stream, EventVersion: "1.0",
			InvokeIdentityArn: "arn:aws:iam::000000000000:role/login-scorer",
			Kinesis: events.KinesisRecord{Data: d, PartitionKey: fmt.Sprintf("pk-%d", i), SequenceNumber: seq, KinesisSchemaVersion: "1.0",
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: loginAt}},
		})
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzParseEvent: parsing a direct event never panics; what it accepts
// has a usable key (non-empty, valid UTF-8, within DynamoDB's limit) keyed
// exactly as the pipeline's decoder keys it; what it rejects comes with an
// *EventError.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"user-42","event_type":"login","ts":"2026-11-24T08:00:00Z"}`,
		`{"user_id":18273,"event_type":"purchase","ts":"2026-11-24T08:00:00Z","amount":3}`,
		`{"user_id":"a\u0000b","event_type":"login","ts":"2026-11-24T08:00:00Z"}`,
		`{"user_id":"x","user_id":"y","event_type":"login","ts":"2026-11-24T08:00:00Z"}`,
		`{"user_id":[],"event_type":"login"}`, `{}`, `[]`, `null`, `"login"`, `{"user_id":1e400,"event_type":"login"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := parseEvent(data, churnFields)
		if err != nil {
			var ee *EventError
			if !errors.As(err, &ee) || ee.Reason == "" {
				t.Fatalf("error %v is not an *EventError with a reason", err)
			}
			return
		}
		if ev.entity == "" || len(ev.entity) > sinks.MaxEntityBytes || !utf8.ValidString(ev.entity) {
			t.Fatalf("accepted an unusable key %q", ev.entity)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if want, ok := pipelineEntity(t, data); ok && want != ev.entity {
			t.Fatalf("entity %q, the pipeline keys this event %q", ev.entity, want)
		}
	})
}

// FuzzKinesisRecord: whatever bytes a Kinesis record holds (plain, inside
// a KPL aggregate, damaged), every user record in it comes out either
// parsed or as poison with a reason, its original bytes and its position;
// none vanishes and none is invented.
func FuzzKinesisRecord(f *testing.F) {
	f.Add([]byte(`{"user_id":"u1","event_type":"login"}`), []byte(`{"user_id":"u2","event_type":"purchase"}`), true)
	f.Add([]byte(`{"user_id":"u1"`), []byte(``), false)
	f.Add([]byte(`{"user_id":7,"event_type":"login"}`), []byte("\xf3\x89\x9a\xc2garbage-after-the-magic-bytes-0123456789"), false)
	f.Fuzz(func(t *testing.T, a, b []byte, aggregate bool) {
		var data [][]byte
		if aggregate {
			data = append(data, kplAggregate([][]byte{a, b}))
		} else {
			data = append(data, a, b)
		}
		inv, err := decodeInvocation(kinesisEvent("app-events", "shardId-000000000000", data))
		if err != nil {
			t.Fatal(err)
		}
		h := &Handler{fields: churnFields}
		units := h.parseBatch(inv.kinesis)
		perRecord := map[int]int{}
		for _, u := range units {
			r := inv.kinesis.Records[u.rec]
			perRecord[u.rec]++
			if u.pos.Sequence != r.Kinesis.SequenceNumber {
				t.Fatalf("user record at %v claims Kinesis record %d (%s)", u.pos, u.rec, r.Kinesis.SequenceNumber)
			}
			if u.poison == nil {
				if u.login && u.entity == "" {
					t.Fatal("a login without a user")
				}
				continue
			}
			p := u.poison
			if p.Detail == "" || (p.Reason != sinks.ReasonUndecodable && p.Reason != sinks.ReasonDeaggregation) ||
				p.Stream != "app-events" || p.Shard != "shardId-000000000000" || p.Position != u.pos {
				t.Fatalf("poison %+v", p)
			}
			if p.Reason == sinks.ReasonDeaggregation && !bytes.Equal(p.Data, r.Kinesis.Data) {
				t.Fatal("a bad aggregate must be dead-lettered whole")
			}
			if aggregate && p.Reason == sinks.ReasonUndecodable && !bytes.Equal(p.Data, [][]byte{a, b}[u.pos.SubSequence]) {
				t.Fatalf("poison user record %d carries %q, not its own bytes", u.pos.SubSequence, p.Data)
			}
		}
		if aggregate {
			// A well-formed aggregate of two user records: exactly two,
			// at sub-sequence numbers 0 and 1.
			if len(units) != 2 || units[0].pos.SubSequence != 0 || units[1].pos.SubSequence != 1 {
				t.Fatalf("aggregate of 2 gave %+v", units)
			}
			return
		}
		for i, d := range data {
			if perRecord[i] == 0 {
				t.Fatalf("Kinesis record %d vanished", i)
			}
			if !bytes.HasPrefix(d, []byte{0xF3, 0x89, 0x9A, 0xC2}) && perRecord[i] != 1 {
				t.Fatalf("plain Kinesis record %d became %d user records", i, perRecord[i])
			}
		}
	})
}

// kplAggregate encodes user records as the KPL does (magic, protobuf
// AggregatedRecord with a partition key table, MD5 of the protobuf), so
// unit tests need no KPL; the integration tests use AWS Labs' encoder.
func kplAggregate(recs [][]byte) []byte {
	body := []byte{0x0a, 2, 'p', 'k'} // partition_key_table: "pk"
	for _, r := range recs {
		m := []byte{0x08, 0, 0x1a} // partition_key_index 0, then data
		m = appendVarint(m, uint64(len(r)))
		m = append(m, r...)
		body = append(body, 0x1a) // records
		body = appendVarint(body, uint64(len(m)))
		body = append(body, m...)
	}
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, body...)
	sum := md5.Sum(body)
	return append(out, sum[:]...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
