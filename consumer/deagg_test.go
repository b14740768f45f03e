package consumer

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/streamscore/streamscore/shardpos"
)

func TestDeaggregateRoundTrip(t *testing.T) {
	recs := []userRecord{
		{pk: "sensor-1", data: []byte(`{"v":1}`)},
		{pk: "sensor-2", ehk: "170141183460469231731687303715884105728", data: []byte(`{"v":2}`)},
		{pk: "sensor-1", data: []byte{}},
		{pk: "sensor-3", data: bytes.Repeat([]byte("x"), 300)},
	}
	agg := encodeAggregate(recs)
	d := newDeaggregator()
	base := Record{Stream: "s", ShardID: "shardId-000000000000", SequenceNumber: "49590338271490256608559692538361571095921575989136588898", PartitionKey: "outer"}
	out, fails := d.appendRecords(nil, agg, base)
	if fails != 0 {
		t.Fatalf("fails = %d, records %+v", fails, out)
	}
	if len(out) != len(recs) {
		t.Fatalf("got %d records, want %d", len(out), len(recs))
	}
	for i, r := range out {
		want := recs[i]
		if r.PartitionKey != want.pk || r.ExplicitHashKey != want.ehk || !bytes.Equal(r.Data, want.data) {
			t.Errorf("record %d = pk %q ehk %q data %q; want %q %q %q", i, r.PartitionKey, r.ExplicitHashKey, r.Data, want.pk, want.ehk, want.data)
		}
		if r.SubSequenceNumber != uint64(i) || !r.Aggregated || r.Err != nil {
			t.Errorf("record %d: sub %d aggregated %v err %v", i, r.SubSequenceNumber, r.Aggregated, r.Err)
		}
		if r.SequenceNumber != base.SequenceNumber || r.Stream != "s" || r.ShardID != base.ShardID {
			t.Errorf("record %d lost the enclosing record's identity: %+v", i, r)
		}
	}
}

func TestDeaggregatePlainRecordPassesThrough(t *testing.T) {
	d := newDeaggregator()
	for _, data := range [][]byte{nil, []byte("plain"), kplMagic[:], append(kplMagic[:2:2], 1, 2, 3)} {
		out, fails := d.appendRecords(nil, data, Record{SequenceNumber: "1", PartitionKey: "k"})
		if fails != 0 || len(out) != 1 || !bytes.Equal(out[0].Data, data) || out[0].Aggregated || out[0].Err != nil {
			t.Errorf("data %x: got %+v fails %d", data, out, fails)
		}
	}
}

func TestDeaggregateCorruptIsDeliveredWholeAndFlagged(t *testing.T) {
	good := encodeAggregate([]userRecord{{pk: "a", data: []byte("1")}, {pk: "b", data: []byte("2")}})
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		return b
	}
	// A record whose index points past the key table, with a valid MD5.
	var body []byte
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendString(body, "a")
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 7)
	m = protowire.AppendTag(m, 3, protowire.BytesType)
	m = protowire.AppendBytes(m, []byte("x"))
	body = protowire.AppendTag(body, 3, protowire.BytesType)
	body = protowire.AppendBytes(body, m)
	sum := md5.Sum(body)
	badIndex := append(append(kplMagic[:4:4], body...), sum[:]...)
	// Truncated protobuf with a valid MD5.
	trunc := good[4 : len(good)-md5.Size-3]
	tsum := md5.Sum(trunc)
	truncated := append(append(kplMagic[:4:4], trunc...), tsum[:]...)

	cases := map[string][]byte{
		"bad md5":     flip(len(good) - 1),
		"bad body":    flip(6),
		"index range": badIndex,
		"truncated":   truncated,
		"no records":  func() []byte { s := md5.Sum(nil); return append(kplMagic[:4:4], s[:]...) }(),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			d := newDeaggregator()
			prior := []Record{{SequenceNumber: "0"}}
			out, fails := d.appendRecords(prior, data, Record{Stream: "s", ShardID: "sh", SequenceNumber: "42", PartitionKey: "k"})
			if fails != 1 || len(out) != 2 {
				t.Fatalf("fails %d, %d records; want the aggregate delivered whole once", fails, len(out))
			}
			r := out[1]
			if !errors.Is(r.Err, ErrDeaggregation) || !bytes.Equal(r.Data, data) || r.SequenceNumber != "42" || r.PartitionKey != "k" {
				t.Fatalf("got %+v", r)
			}
			t.Log(r.Err)
		})
	}
}

func TestDropThroughResumesInsideAggregate(t *testing.T) {
	agg := encodeAggregate([]userRecord{{pk: "a", data: []byte("0")}, {pk: "a", data: []byte("1")}, {pk: "a", data: []byte("2")}})
	d := newDeaggregator()
	recs, _ := d.appendRecords(nil, agg, Record{SequenceNumber: "100"})
	recs = dropThrough(recs, 0, shardpos.Position{Sequence: "100", SubSequence: 1})
	if len(recs) != 1 || string(recs[0].Data) != "2" || recs[0].SubSequenceNumber != 2 {
		t.Fatalf("got %+v, want only sub-record 2", recs)
	}
}

func FuzzDeaggregate(f *testing.F) {
	// With frame set, the input is the protobuf body and gets a valid
	// magic and MD5, so the fuzzer explores the protobuf parser instead of
	// stopping at the checksum.
	body := func(agg []byte) []byte { return agg[len(kplMagic) : len(agg)-md5.Size] }
	f.Add(encodeAggregate([]userRecord{{pk: "a", data: []byte("1")}}), false)
	f.Add(body(encodeAggregate([]userRecord{{pk: "a", ehk: "5", data: []byte("1")}, {pk: "b", data: nil}})), true)
	f.Add(body(encodeAggregate([]userRecord{{pk: "a", data: []byte("1")}, {pk: "a", data: []byte("22")}})), true)
	f.Add([]byte("plain"), false)
	f.Add(kplMagic[:], false)
	f.Fuzz(func(t *testing.T, data []byte, frame bool) {
		if frame {
			sum := md5.Sum(data)
			data = append(append(kplMagic[:4:4], data...), sum[:]...)
		}
		d := newDeaggregator()
		out, fails := d.appendRecords(nil, data, Record{SequenceNumber: "1", PartitionKey: "p"})
		if len(out) == 0 {
			t.Fatal("record dropped")
		}
		if fails > 0 {
			if fails != 1 || len(out) != 1 || !bytes.Equal(out[0].Data, data) || !errors.Is(out[0].Err, ErrDeaggregation) {
				t.Fatalf("failure not delivered whole: fails %d out %d", fails, len(out))
			}
			return
		}
		total := 0
		for i, r := range out {
			if r.Err != nil {
				t.Fatalf("record %d has Err without a failure count", i)
			}
			if r.Aggregated && r.SubSequenceNumber != uint64(i) {
				t.Fatalf("sub-sequence %d at index %d", r.SubSequenceNumber, i)
			}
			total += len(r.Data)
		}
		if total > len(data) {
			t.Fatalf("more payload (%d) than input (%d)", total, len(data))
		}
		// Whatever deaggregated must re-encode to an aggregate that
		// deaggregates to the same user records.
		if out[0].Aggregated {
			recs := make([]userRecord, len(out))
			for i, r := range out {
				recs[i] = userRecord{pk: r.PartitionKey, ehk: r.ExplicitHashKey, data: r.Data}
			}
			again, fails := newDeaggregator().appendRecords(nil, encodeAggregate(recs), Record{SequenceNumber: "1"})
			if fails != 0 || len(again) != len(out) {
				t.Fatalf("re-encoded aggregate: fails %d, %d records, want %d", fails, len(again), len(out))
			}
			for i := range again {
				if !bytes.Equal(again[i].Data, out[i].Data) || again[i].PartitionKey != out[i].PartitionKey {
					t.Fatalf("record %d differs after re-encoding", i)
				}
			}
		}
	})
}

// benchAggregates returns n aggregates of per user records each, with
// partition keys drawn from a fixed set of devices, like a KPL producer
// writing sensor readings.
func benchAggregates(n, per, size int) [][]byte {
	out := make([][]byte, n)
	payload := bytes.Repeat([]byte("r"), size)
	for i := range out {
		recs := make([]userRecord, per)
		for j := range recs {
			recs[j] = userRecord{pk: fmt.Sprintf("device-%03d", (i*per+j)%500), data: payload}
		}
		out[i] = encodeAggregate(recs)
	}
	return out
}

// BenchmarkDeaggregate measures KPL deaggregation plus the per-record work
// the shard loop does around it (filtering by checkpoint, counting bytes):
// user records per second on one core, and allocations per op.
func BenchmarkDeaggregate(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("payload=%dB", size), func(b *testing.B) {
			const per = 100
			aggs := benchAggregates(64, per, size)
			d := newDeaggregator()
			var recs []Record
			base := Record{Stream: "sensors", ShardID: "shardId-000000000001", SequenceNumber: "49590338271490256608559692538361571095921575989136588898"}
			for _, a := range aggs { // warm the record slice and key cache: steady state
				recs, _ = d.appendRecords(recs, a, base)
			}
			b.ReportAllocs()
			b.ResetTimer()
			users, bytesIn := 0, 0
			for i := 0; i < b.N; i++ {
				recs = recs[:0]
				for _, a := range aggs {
					recs, _ = d.appendRecords(recs, a, base)
				}
				recs = dropThrough(recs, 0, shardpos.Position{Sequence: "1"})
				for j := range recs {
					bytesIn += len(recs[j].Data)
				}
				users += len(recs)
			}
			b.ReportMetric(float64(users)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(users)/float64(b.N), "records/op")
			_ = bytesIn
		})
	}
}

// BenchmarkPlainRecords measures the same loop for records that are not
// aggregated.
func BenchmarkPlainRecords(b *testing.B) {
	payload := bytes.Repeat([]byte("r"), 100)
	d := newDeaggregator()
	var recs []Record
	base := Record{Stream: "sensors", ShardID: "shardId-000000000001", SequenceNumber: "49590338271490256608559692538361571095921575989136588898", PartitionKey: "device-001"}
	b.ReportAllocs()
	users := 0
	for i := 0; i < b.N; i++ {
		recs = recs[:0]
		for j := 0; j < 1000; j++ {
			recs, _ = d.appendRecords(recs, payload, base)
		}
		users += len(recs)
	}
	b.ReportMetric(float64(users)/b.Elapsed().Seconds(), "records/s")
}
