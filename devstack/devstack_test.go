package devstack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/streamscore/streamscore/devstack"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

func TestKinesisPutGet(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	stream := env.CreateStream(t, 2)

	want := map[string]bool{}
	for i := range 20 {
		data := fmt.Sprintf(`{"machine_id":"press-%03d","i":%d}`, i%4, i)
		want[data] = true
		if _, err := env.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String(fmt.Sprintf("press-%03d", i%4)), Data: []byte(data),
		}); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
	}
	shards, err := env.Kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards.Shards) != 2 {
		t.Fatalf("stream has %d shards, want 2", len(shards.Shards))
	}
	got := map[string]bool{}
	for _, sh := range shards.Shards {
		it, err := env.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: kintypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := env.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Records {
			got[string(r.Data)] = true
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read back %d distinct records, want %d", len(got), len(want))
	}
	for d := range want {
		if !got[d] {
			t.Errorf("record %s not read back", d)
		}
	}
}

func TestDynamoDBConditionalUpdate(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := env.Name("leases")
	if err := devstack.EnsureTable(ctx, env.DynamoDB, devstack.TablePlan{Name: table, HashKey: "leaseKey"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})

	if _, err := env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]ddbtypes.AttributeValue{
			"leaseKey":     &ddbtypes.AttributeValueMemberS{Value: "shardId-000000000000"},
			"leaseOwner":   &ddbtypes.AttributeValueMemberS{Value: "worker-a"},
			"leaseCounter": &ddbtypes.AttributeValueMemberN{Value: "1"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	update := func(expectCounter string) error {
		_, err := env.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           aws.String(table),
			Key:                 map[string]ddbtypes.AttributeValue{"leaseKey": &ddbtypes.AttributeValueMemberS{Value: "shardId-000000000000"}},
			UpdateExpression:    aws.String("SET leaseCounter = leaseCounter + :one"),
			ConditionExpression: aws.String("leaseCounter = :expect"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":one": &ddbtypes.AttributeValueMemberN{Value: "1"}, ":expect": &ddbtypes.AttributeValueMemberN{Value: expectCounter},
			},
		})
		return err
	}
	if err := update("1"); err != nil {
		t.Fatalf("conditional update with the current counter: %v", err)
	}
	err := update("1")
	var ccf *ddbtypes.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		t.Fatalf("update with a stale counter: got %v, want ConditionalCheckFailedException", err)
	}
	item, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"leaseKey": &ddbtypes.AttributeValueMemberS{Value: "shardId-000000000000"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := item.Item["leaseCounter"].(*ddbtypes.AttributeValueMemberN).Value; n != "2" {
		t.Fatalf("leaseCounter = %s, want 2", n)
	}
}

func TestS3UploadList(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	bucket := env.CreateBucket(t)
	key := "stream=factory-sensors/dt=2026-11-24/hour=10/part.parquet"
	body := bytes.Repeat([]byte("streamscore"), 1000)
	if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	list, err := env.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("stream=factory-sensors/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != key || aws.ToInt64(list.Contents[0].Size) != int64(len(body)) {
		t.Fatalf("listing = %+v, want exactly %s of %d bytes", list.Contents, key, len(body))
	}
	obj, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	got, _ := io.ReadAll(obj.Body)
	if !bytes.Equal(got, body) {
		t.Fatal("object read back differs from what was uploaded")
	}
}

func TestSNSToSQS(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	topic, queue := env.CreateTopicQueue(t, false)
	if _, err := env.SNS.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String(`{"entity":"press-017","score":0.93}`), Subject: aws.String("failure risk")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if strings.Contains(aws.ToString(m.Body), `press-017`) {
				return
			}
		}
	}
	t.Fatal("the message published to the topic never reached the subscribed queue")
}

func TestCloudWatchPutRead(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	ns := env.Name("streamscore-test")
	now := time.Now().UTC().Truncate(time.Minute)
	dims := []cwtypes.Dimension{{Name: aws.String("pipeline"), Value: aws.String("factory")}}
	// kumo cannot decode a CBOR-encoded Timestamp, and stores a StatisticSet
	// as its average: plain values with the server's clock are what it keeps
	// faithfully.
	for _, v := range []float64{20, 3, 19} {
		if _, err := env.CloudWatch.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
			Namespace: aws.String(ns),
			MetricData: []cwtypes.MetricDatum{{
				MetricName: aws.String("EventsIn"), Dimensions: dims, Value: aws.Float64(v), Unit: cwtypes.StandardUnitCount,
			}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := env.CloudWatch.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-5 * time.Minute)), EndTime: aws.Time(now.Add(5 * time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{
			Id: aws.String("events"),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(ns), MetricName: aws.String("EventsIn"), Dimensions: dims},
				Period: aws.Int32(60), Stat: aws.String("Sum"),
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.MetricDataResults) != 1 {
		t.Fatalf("GetMetricData returned %d results, want 1", len(out.MetricDataResults))
	}
	// kumo answers GetMetricData with the raw datapoints in range rather
	// than one aggregate per period, so compare the multiset of values.
	got := slices.Sorted(slices.Values(out.MetricDataResults[0].Values))
	if want := []float64{3, 19, 20}; !slices.Equal(got, want) {
		t.Fatalf("values read back = %v, want %v", got, want)
	}
}

func TestServersListenOnLoopbackOnly(t *testing.T) {
	env := devstacktest.New(t)
	st, err := devstack.Load(env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Procs {
		if p.Port >= 32768 {
			t.Errorf("%s listens on port %d, inside the kernel's ephemeral range", p.Service, p.Port)
		}
		// Dial the port on a non-loopback address of this machine: nothing may answer.
		for _, addr := range nonLoopbackAddrs(t) {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, fmt.Sprint(p.Port)), 300*time.Millisecond)
			if err == nil {
				c.Close()
				t.Errorf("%s answers on %s:%d; servers must listen on 127.0.0.1 only", p.Service, addr, p.Port)
			}
		}
	}
}

func nonLoopbackAddrs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

func TestToxiproxyCutsTheLine(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	p := env.Proxy(t, env.Endpoints.DynamoDB)
	c := devstack.Endpoints{DynamoDB: p.URL()}.Clients().DynamoDB
	if _, err := c.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if err := p.SetEnabled(ctx, false); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.ListTables(short, &dynamodb.ListTablesInput{}, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }); err == nil {
		t.Fatal("a disabled proxy still let the call through")
	}
	if err := p.SetEnabled(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("after re-enabling the proxy: %v", err)
	}
}
