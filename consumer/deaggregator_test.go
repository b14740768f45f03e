package consumer

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/streamscore/streamscore/shardpos"
)

// The exported Deaggregator is what a Lambda function behind a Kinesis
// event source mapping uses; these tests hold it to what a Consumer
// delivers.

func TestDeaggregatorSplitsAggregatesKeepsPlainAndFlagsCorrupt(t *testing.T) {
	agg := encodeAggregate([]userRecord{
		{pk: "user-1", data: []byte(`{"n":0}`)},
		{pk: "user-2", ehk: "340282366920938463463374607431768211455", data: []byte(`{"n":1}`)},
		{pk: "user-1", data: []byte(`{"n":2}`)},
	})
	corrupt := bytes.Clone(agg)
	corrupt[len(corrupt)-1] ^= 0xff // MD5 no longer matches
	arrival := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	base := func(seq, pk string) Record {
		// Fields the caller has no business setting are ignored, not copied.
		return Record{Stream: "app-events", ShardID: "shardId-000000000001", SequenceNumber: seq, PartitionKey: pk,
			ApproximateArrival: arrival, SubSequenceNumber: 99, Aggregated: true, ExplicitHashKey: "stale",
			Data: []byte("stale"), Err: errors.New("stale")}
	}
	d := NewDeaggregator()
	var got []Record
	got = d.Deaggregate(got, agg, base("100", "outer"))
	got = d.Deaggregate(got, []byte(`{"plain":true}`), base("200", "plain-pk"))
	got = d.Deaggregate(got, corrupt, base("300", "bad"))

	type want struct {
		seq        string
		sub        uint64
		pk, ehk    string
		data       string
		aggregated bool
	}
	wants := []want{
		{"100", 0, "user-1", "", `{"n":0}`, true},
		{"100", 1, "user-2", "340282366920938463463374607431768211455", `{"n":1}`, true},
		{"100", 2, "user-1", "", `{"n":2}`, true},
		{"200", 0, "plain-pk", "", `{"plain":true}`, false},
	}
	if len(got) != len(wants)+1 {
		t.Fatalf("got %d records, want %d: %+v", len(got), len(wants)+1, got)
	}
	for i, w := range wants {
		r := got[i]
		if r.SequenceNumber != w.seq || r.SubSequenceNumber != w.sub || r.PartitionKey != w.pk || r.ExplicitHashKey != w.ehk ||
			string(r.Data) != w.data || r.Aggregated != w.aggregated || r.Err != nil {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
		if r.Stream != "app-events" || r.ShardID != "shardId-000000000001" || !r.ApproximateArrival.Equal(arrival) {
			t.Errorf("record %d lost the Kinesis record's identity: %+v", i, r)
		}
		if p := r.Position(); p != (shardpos.Position{Sequence: w.seq, SubSequence: w.sub}) {
			t.Errorf("record %d position %+v", i, p)
		}
	}
	bad := got[len(got)-1]
	if !errors.Is(bad.Err, ErrDeaggregation) || !bytes.Equal(bad.Data, corrupt) || bad.SequenceNumber != "300" {
		t.Fatalf("corrupt aggregate = seq %s err %v, %d bytes; want it whole, flagged with ErrDeaggregation", bad.SequenceNumber, bad.Err, len(bad.Data))
	}
	for _, s := range []string{"300", "shardId-000000000001"} {
		if !bytes.Contains([]byte(bad.Err.Error()), []byte(s)) {
			t.Errorf("error %q does not name %s", bad.Err, s)
		}
	}
}

func TestDeaggregatorReadsAWSLabsEncoder(t *testing.T) {
	chunks, flat := userChunks(2, 30)
	aggs := nodeAggregate(t, chunks)
	d := NewDeaggregator()
	var got []Record
	for i, a := range aggs {
		got = d.Deaggregate(got, a.Data, Record{SequenceNumber: fmt.Sprint(i + 1), PartitionKey: a.PartitionKey})
	}
	if len(got) != len(flat) {
		t.Fatalf("%d user records, want %d", len(got), len(flat))
	}
	for i, r := range got {
		if r.Err != nil || r.PartitionKey != flat[i].PartitionKey || r.ExplicitHashKey != flat[i].ExplicitHashKey || !bytes.Equal(r.Data, flat[i].Data) {
			t.Fatalf("user record %d = %q %q %q (err %v), want %q %q %q", i, r.PartitionKey, r.ExplicitHashKey, r.Data, r.Err,
				flat[i].PartitionKey, flat[i].ExplicitHashKey, flat[i].Data)
		}
	}
}

func TestDeaggregatorReusedAllocatesNothing(t *testing.T) {
	var recs []userRecord
	for i := range 50 {
		recs = append(recs, userRecord{pk: fmt.Sprintf("user-%d", i%5), data: []byte(`{"user_id":"u","event_type":"login"}`)})
	}
	agg := encodeAggregate(recs)
	d := NewDeaggregator()
	dst := d.Deaggregate(nil, agg, Record{SequenceNumber: "1"})
	allocs := testing.AllocsPerRun(100, func() {
		dst = d.Deaggregate(dst[:0], agg, Record{SequenceNumber: "1"})
	})
	if allocs != 0 || len(dst) != len(recs) {
		t.Fatalf("%v allocations per aggregate, %d records; want 0 and %d", allocs, len(dst), len(recs))
	}
}
