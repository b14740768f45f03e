package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/internal/kplnode"
)

type jsRecord = kplnode.Record

// nodeAggregate encodes each chunk with the npm aws-kinesis-agg package.
func nodeAggregate(t *testing.T, chunks [][]jsRecord) []jsRecord {
	t.Helper()
	if testing.Short() {
		t.Skip("needs node and the devstack's node_modules")
	}
	modules, err := filepath.Abs("../devstack/node/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := kplnode.Aggregate(modules, chunks)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func userChunks(n, per int) ([][]jsRecord, []jsRecord) {
	var chunks [][]jsRecord
	var flat []jsRecord
	for c := 0; c < n; c++ {
		var chunk []jsRecord
		for i := 0; i < per; i++ {
			r := jsRecord{PartitionKey: fmt.Sprintf("device-%d", (c*per+i)%7), Data: []byte(fmt.Sprintf(`{"chunk":%d,"i":%d}`, c, i))}
			if i%5 == 0 {
				r.ExplicitHashKey = fmt.Sprint(1000 + i)
			}
			chunk = append(chunk, r)
			flat = append(flat, r)
		}
		chunks = append(chunks, chunk)
	}
	return chunks, flat
}

func TestDeaggregatesAWSLabsEncoder(t *testing.T) {
	chunks, flat := userChunks(3, 40)
	aggs := nodeAggregate(t, chunks)
	if len(aggs) != 3 {
		t.Fatalf("node produced %d aggregates, want 3", len(aggs))
	}
	d := newDeaggregator()
	var got []Record
	for i, a := range aggs {
		var fails int
		got, fails = d.appendRecords(got, a.Data, Record{SequenceNumber: fmt.Sprint(i + 1), PartitionKey: a.PartitionKey})
		if fails != 0 {
			t.Fatalf("aggregate %d: %v", i, got[len(got)-1].Err)
		}
	}
	if len(got) != len(flat) {
		t.Fatalf("%d user records, want %d", len(got), len(flat))
	}
	for i := range got {
		if got[i].PartitionKey != flat[i].PartitionKey || got[i].ExplicitHashKey != flat[i].ExplicitHashKey || !bytes.Equal(got[i].Data, flat[i].Data) {
			t.Fatalf("user record %d = %q %q %q, want %q %q %q", i, got[i].PartitionKey, got[i].ExplicitHashKey, got[i].Data,
				flat[i].PartitionKey, flat[i].ExplicitHashKey, flat[i].Data)
		}
	}
}

func TestKPLThroughKinesis(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	table := env.Name("leases")
	chunks, flat := userChunks(4, 25)
	aggs := nodeAggregate(t, chunks)
	ctx := devstacktest.Ctx(t)
	put := func(pk string, data []byte) string {
		out, err := env.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: &stream, PartitionKey: aws.String(pk), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return *out.SequenceNumber
	}
	var seqs []string
	for i, a := range aggs {
		seqs = append(seqs, put(a.PartitionKey, a.Data))
		if i == 1 {
			// A corrupt aggregate between good ones: delivered whole, flagged.
			bad := bytes.Clone(aggs[0].Data)
			bad[len(bad)-1] ^= 0xff
			seqs = append(seqs, put("corrupt", bad))
		}
	}

	// First worker: checkpoints in the middle of the first aggregate
	// (after sub-record 9), then shuts down gracefully.
	const stopAfter = 9
	col := newCollector()
	done := make(chan struct{})
	h := ProcessFunc(func(ctx context.Context, b *Batch) error {
		for _, r := range b.Records {
			if r.SequenceNumber == seqs[0] && r.SubSequenceNumber == stopAfter {
				if err := b.Checkpointer.Checkpoint(ctx, r.Position()); err != nil {
					return err
				}
				close(done)
				return nil
			}
		}
		return nil
	})
	stop := run(t, newConsumer(t, testConfig(table, "first", stream), env.Kinesis, env.DynamoDB), h)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("first worker never reached the first aggregate")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	run(t, newConsumer(t, testConfig(table, "second", stream), env.Kinesis, env.DynamoDB), col.handler("second", nil))
	want := len(flat) - (stopAfter + 1) + 1 // the rest of the user records, plus the corrupt one
	waitFor(t, 30*time.Second, "all user records after the checkpoint", func() bool { return len(col.deliveries()) >= want })
	time.Sleep(300 * time.Millisecond) // anything extra would show up now
	got := col.deliveries()
	if len(got) != want {
		t.Fatalf("delivered %d records, want %d", len(got), want)
	}
	if got[0].seq != seqs[0] || got[0].sub != stopAfter+1 {
		t.Fatalf("resumed at %s/%d, want %s/%d", got[0].seq, got[0].sub, seqs[0], stopAfter+1)
	}
	i := stopAfter + 1
	for _, d := range got {
		if d.err != nil {
			if !errors.Is(d.err, ErrDeaggregation) || d.seq != seqs[2] || d.pk != "corrupt" {
				t.Fatalf("flagged record %+v", d)
			}
			continue
		}
		if d.data != string(flat[i].Data) || d.pk != flat[i].PartitionKey {
			t.Fatalf("user record %d = %q/%q, want %q/%q", i, d.pk, d.data, flat[i].PartitionKey, flat[i].Data)
		}
		i++
	}
}
