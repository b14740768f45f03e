package devstack_test

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/loadtest"
)

// TestFastKinesisServersRoundTrip: a stack started with another Kinesis
// server runs it, records the choice in its state file, refuses to be taken
// for a stack running another server, and serves what the load test and
// the consumer do: PutRecords of plain and KPL-aggregated records, then
// GetRecords from TRIM_HORIZON returning them in order, byte for byte.
func TestFastKinesisServersRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts local Kinesis servers")
	}
	root, err := devstack.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, server := range []devstack.KinesisServer{devstack.Kinesalite, devstack.Kumo} {
		t.Run(string(server), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			dir := t.TempDir()
			cfg := devstack.Config{Root: root, Dir: dir, Services: []devstack.Service{devstack.Kinesis}, KinesisServer: server, DieWithParent: true}
			st, err := devstack.Up(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Down(context.Background()) })

			loaded, err := devstack.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if loaded.KinesisServer != server || len(loaded.Procs) != 1 || !strings.Contains(loaded.Procs[0].Marker, string(server)) {
				t.Fatalf("state file records Kinesis server %q, procs %+v; want %s", loaded.KinesisServer, loaded.Procs, server)
			}
			if err := loaded.Check(ctx); err != nil {
				t.Fatalf("status check of the recorded stack: %v", err)
			}
			other := cfg
			other.KinesisServer = devstack.KinesisLocal
			if _, err := devstack.Up(ctx, other); err == nil || !strings.Contains(err.Error(), string(server)) {
				t.Fatalf("Up asking for kinesis-local on a running %s stack: err = %v, want a refusal naming %s", server, err, server)
			}

			// A client that drops a call midway (a cancelled context, a
			// reset) must not take the server down: kinesalite died of it.
			abortRequests(t, st.Endpoints.Kinesis, "Kinesis_20131202.ListStreams", "application/x-amz-json-1.1")
			if err := st.Check(ctx); err != nil {
				t.Fatalf("after three aborted requests: %v", err)
			}

			k := st.Endpoints.Clients().Kinesis
			stream := fmt.Sprintf("roundtrip-%d", time.Now().UnixNano())
			if _, err := devstack.EnsureStream(ctx, k, stream, 2); err != nil {
				t.Fatal(err)
			}
			// Six plain readings of one machine and one aggregate of three
			// machines' readings, all on the shard of press-001.
			var entries []kintypes.PutRecordsRequestEntry
			var want [][]byte
			for i := range 6 {
				d := fmt.Appendf(nil, `{"machine_id":"press-001","ts":"2026-11-02T08:00:0%d.000Z","temperature_c":%d}`, i, 60+i)
				entries = append(entries, kintypes.PutRecordsRequestEntry{PartitionKey: aws.String("press-001"), Data: d})
				want = append(want, d)
			}
			agg, n := loadtest.AggregateKeys([]loadtest.Event{
				{Key: "press-001", Data: []byte(`{"machine_id":"press-001"}`)},
				{Key: "press-002", Data: []byte(`{"machine_id":"press-002"}`)},
				{Key: "press-003", Data: []byte(`{"machine_id":"press-003"}`)},
			}, 1<<20)
			if n != 3 {
				t.Fatalf("aggregate holds %d readings, want 3", n)
			}
			entries = append(entries, kintypes.PutRecordsRequestEntry{PartitionKey: aws.String("press-001"), Data: agg})
			want = append(want, agg)
			out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToInt32(out.FailedRecordCount) != 0 {
				t.Fatalf("PutRecords failed %d records", aws.ToInt32(out.FailedRecordCount))
			}
			shardID := aws.ToString(out.Records[0].ShardId)
			for i, r := range out.Records {
				if aws.ToString(r.ShardId) != shardID {
					t.Fatalf("record %d went to %s, record 0 to %s: one partition key, one shard", i, aws.ToString(r.ShardId), shardID)
				}
			}

			it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
				ShardId: aws.String(shardID), ShardIteratorType: kintypes.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			var got []kintypes.Record
			iter := it.ShardIterator
			for range 50 {
				if len(got) >= len(want) {
					break
				}
				res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, res.Records...)
				iter = res.NextShardIterator
			}
			if len(got) != len(want) {
				t.Fatalf("read %d records back, want %d", len(got), len(want))
			}
			for i, r := range got {
				if !bytes.Equal(r.Data, want[i]) {
					t.Errorf("record %d: got %q, want %q", i, r.Data, want[i])
				}
				if i > 0 {
					prev, _ := new(big.Int).SetString(aws.ToString(got[i-1].SequenceNumber), 10)
					cur, _ := new(big.Int).SetString(aws.ToString(r.SequenceNumber), 10)
					if prev == nil || cur == nil || cur.Cmp(prev) <= 0 {
						t.Errorf("sequence numbers out of order: %s then %s", aws.ToString(got[i-1].SequenceNumber), aws.ToString(r.SequenceNumber))
					}
				}
				if aws.ToString(r.SequenceNumber) != aws.ToString(out.Records[i].SequenceNumber) {
					t.Errorf("record %d read back with sequence number %s, PutRecords said %s", i, aws.ToString(r.SequenceNumber), aws.ToString(out.Records[i].SequenceNumber))
				}
			}
		})
	}
}

// abortRequests sends three requests whose bodies never complete and resets
// each connection once the server has read part of the body.
func abortRequests(t *testing.T, endpoint, target, contentType string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("POST / HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: " + contentType + "\r\n" +
			"X-Amz-Target: " + target + "\r\nContent-Length: 100\r\n\r\n{\"Limit\":"))
		_ = c.(*net.TCPConn).SetLinger(0)
		buf := make([]byte, 1)
		_ = c.SetReadDeadline(deadlineSoon())
		_, _ = c.Read(buf)
		_ = c.Close()
	}
}
