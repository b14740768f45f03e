package sinks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/shardpos"
)

func TestDeadLetterBodiesAttributesAndLargeRecords(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	queue := env.CreateQueue(t, false)
	bucket := env.CreateBucket(t)
	m, reg := newMetrics(t)
	d, err := NewDeadLetter(DeadLetterOptions{SQS: env.SQS, QueueURL: queue, S3: env.S3, Bucket: bucket, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Poison
	for i := range 12 {
		recs = append(recs, Poison{Reason: ReasonUndecodable, Detail: fmt.Sprintf("line 1: field \"temp\": not a number (%d)", i),
			Stream: "factory", Shard: "shardId-000000000003", Position: shardpos.Position{Sequence: fmt.Sprintf("4963%052d", i), SubSequence: uint64(i % 3)},
			Data: []byte(fmt.Sprintf("{\"temp\":\"x%d\"}\x00\xff", i))})
	}
	big := bytes.Repeat([]byte{0xF3, 0x89, 0x9A, 0xC2}, 80<<10) // 320 KiB: too large for SQS
	recs = append(recs, Poison{Reason: ReasonDeaggregation, Detail: "bad MD5", Stream: "factory", Shard: "shardId-000000000003", Position: pos(99), Data: big})
	if err := d.Send(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if f := counter(t, reg, "streamscore_sink_flushes_total", "deadletter"); f != 2 {
		t.Errorf("%v SendMessageBatch calls for 13 records, want 2 (10 per call)", f)
	}

	got := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(recs) && time.Now().Before(deadline) {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range out.Messages {
			attr := func(k string) string { return aws.ToString(msg.MessageAttributes[k].StringValue) }
			p := shardpos.Position{Sequence: attr("sequence_number")}
			fmt.Sscan(attr("sub_sequence"), &p.SubSequence)
			var want *Poison
			for i := range recs {
				if recs[i].Position == p {
					want = &recs[i]
				}
			}
			if want == nil {
				t.Fatalf("message for unknown position %v", p)
			}
			if attr("reason") != want.Reason || attr("stream") != "factory" || attr("shard") != want.Shard || attr("detail") != want.Detail {
				t.Errorf("attributes %v do not match %+v", msg.MessageAttributes, want)
			}
			var data []byte
			switch attr("payload") {
			case "inline":
				data, err = base64.StdEncoding.DecodeString(aws.ToString(msg.Body))
				if err != nil {
					t.Fatal(err)
				}
			case "s3":
				var ptr Pointer
				if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &ptr); err != nil {
					t.Fatal(err)
				}
				obj, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ptr.Bucket), Key: aws.String(ptr.Key)})
				if err != nil {
					t.Fatal(err)
				}
				data, _ = io.ReadAll(obj.Body)
				obj.Body.Close()
				if ptr.Size != len(want.Data) {
					t.Errorf("pointer size %d, want %d", ptr.Size, len(want.Data))
				}
			default:
				t.Fatalf("payload attribute %q", attr("payload"))
			}
			if !bytes.Equal(data, want.Data) {
				t.Errorf("record at %v: payload differs from the original bytes", p)
			}
			got[p.String()] = true
		}
	}
	if len(got) != len(recs) {
		t.Fatalf("received %d distinct dead letters, want %d", len(got), len(recs))
	}
}

// A 1.2 MB undecodable record (Kinesis takes up to 1 MiB and more on
// request) never makes the dead-letter path fail: with a bucket it is
// stored whole in S3; without one it is sent truncated to fit SQS, saying
// so, with its original size and the position to re-read it from.
func TestDeadLetterLargeRecordWithAndWithoutBucket(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	big := bytes.Repeat([]byte(`{"temp":"`), 1_200_000/9)
	p := Poison{Reason: ReasonUndecodable, Detail: "line 1: unexpected end of input", Stream: "factory", Shard: "shardId-000000000002", Position: pos(7), Data: big}

	t.Run("bucket", func(t *testing.T) {
		queue, bucket := env.CreateQueue(t, false), env.CreateBucket(t)
		d, err := NewDeadLetter(DeadLetterOptions{SQS: env.SQS, QueueURL: queue, S3: env.S3, Bucket: bucket, Prefix: "dl/"})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Send(ctx, p); err != nil {
			t.Fatal(err)
		}
		m := receiveDeadLetters(t, env, queue, 1)[0]
		var ptr Pointer
		if err := json.Unmarshal(m.body, &ptr); err != nil || m.attrs["payload"] != "s3" || ptr.Size != len(big) {
			t.Fatalf("message %v %q: want an S3 pointer to %d bytes (%v)", m.attrs, m.body, len(big), err)
		}
		obj, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ptr.Bucket), Key: aws.String(ptr.Key)})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		if !bytes.Equal(data, big) {
			t.Errorf("S3 holds %d bytes, want the record's %d", len(data), len(big))
		}
	})
	t.Run("no bucket", func(t *testing.T) {
		queue := env.CreateQueue(t, false)
		d, err := NewDeadLetter(DeadLetterOptions{SQS: env.SQS, QueueURL: queue})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Send(ctx, p); err != nil {
			t.Fatalf("Send of a 1.2 MB record without a bucket: %v, want it sent truncated", err)
		}
		m := receiveDeadLetters(t, env, queue, 1)[0]
		if m.attrs["payload"] != "truncated" || m.attrs["original_size"] != fmt.Sprint(len(big)) || m.attrs["reason"] != ReasonUndecodable {
			t.Errorf("attributes %v: want payload truncated, original_size %d, the reason kept", m.attrs, len(big))
		}
		if len(m.body) == 0 || len(m.body) >= len(big) || !bytes.HasPrefix(big, m.body) {
			t.Errorf("body is %d bytes, want a prefix of the %d-byte record", len(m.body), len(big))
		}
		for _, want := range []string{"truncated to", fmt.Sprintf("of %d bytes", len(big)), "shardId-000000000002", pos(7).String(), p.Detail} {
			if !strings.Contains(m.attrs["detail"], want) {
				t.Errorf("detail %q does not say %q", m.attrs["detail"], want)
			}
		}
		if m.attrs["sequence_number"] != pos(7).Sequence {
			t.Errorf("sequence_number %q", m.attrs["sequence_number"])
		}
	})
}
