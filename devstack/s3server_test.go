package devstack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// The demo's stack compiles nothing: every server it starts comes from npm.
// The full stack needs the three Go servers.
func TestGoToolsAreOnlyWhatTheStackStarts(t *testing.T) {
	demo := Config{Services: []Service{Kinesis, DynamoDB, S3, SNSSQS}, S3Server: S3rver}
	if got := demo.goTools(); len(got) != 0 {
		t.Errorf("the demo's stack builds %v; want no Go server", got)
	}
	all := Config{Services: AllServices()}
	got := all.goTools()
	slices.Sort(got)
	if want := []string{"kumo", "server", "versitygw"}; !slices.Equal(got, want) {
		t.Errorf("the full stack builds %v; want %v", got, want)
	}
	kumoKinesis := Config{Services: []Service{Kinesis}, KinesisServer: Kumo}
	if got := kumoKinesis.goTools(); !slices.Equal(got, []string{"kumo"}) {
		t.Errorf("a kumo Kinesis builds %v; want kumo", got)
	}
	for _, tools := range [][]string{got, all.goTools()} {
		for _, tool := range tools {
			if _, ok := goTools[tool]; !ok {
				t.Errorf("%s is not a pinned Go tool", tool)
			}
		}
	}
}

// TestS3rverServesWhatTheSinksAndTheLoadTestUse: the demo's S3 server takes
// the stack's key pair, refuses another, and serves bucket creation,
// PutObject, ListObjectsV2 by prefix with sizes and times, and GetObject.
func TestS3rverServesWhatTheSinksAndTheLoadTestUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local S3 server")
	}
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cfg := Config{Root: root, Dir: dir, Services: []Service{S3}, S3Server: S3rver, DieWithParent: true}
	st, err := Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Down(context.Background()) })
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.S3Server != S3rver {
		t.Errorf("state file records S3 server %q; want s3rver", loaded.S3Server)
	}
	other := cfg
	other.S3Server = Versitygw
	if _, err := Up(ctx, other); err == nil || !strings.Contains(err.Error(), "s3rver") {
		t.Errorf("Up asking for versitygw on a running s3rver stack: err = %v, want a refusal naming s3rver", err)
	}

	c := st.Endpoints.Clients().S3
	bucket := "streamscore-s3rver-test"
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("parquet"), 1000)
	before := time.Now().Add(-2 * time.Second)
	for _, key := range []string{"factory/failure/dt=2026-12-02/a.parquet", "factory/failure/dt=2026-12-02/b.parquet", "churn/x.parquet"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("factory/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 2 {
		t.Fatalf("listed %d objects under factory/; want 2", len(list.Contents))
	}
	for _, o := range list.Contents {
		if aws.ToInt64(o.Size) != int64(len(body)) || o.LastModified == nil || o.LastModified.Before(before) {
			t.Errorf("%s: size %d, last modified %v", aws.ToString(o.Key), aws.ToInt64(o.Size), o.LastModified)
		}
	}
	obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: list.Contents[0].Key})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("GetObject returned %d bytes (%v); want the %d put", len(got), err, len(body))
	}

	stranger := s3.NewFromConfig(aws.Config{Region: Region, Credentials: credentials.NewStaticCredentialsProvider("stranger", "secret", "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(st.Endpoints.S3); o.UsePathStyle = true })
	_, err = stranger.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidAccessKeyId" {
		t.Errorf("an unknown access key id listed the bucket: err = %v", err)
	}
}
