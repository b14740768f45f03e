package retry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
)

// answer is what a fake service says to every request.
type answer struct {
	status int
	header map[string]string
	body   string
	// hangUp closes the connection without an answer.
	hangUp bool
	// hold answers nothing until the client gives up.
	hold bool
}

func serve(t *testing.T, a answer) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the request through, so the server notices the client
		// hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case a.hangUp:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		case a.hold:
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv.URL
}

var creds = credentials.NewStaticCredentialsProvider("AKID", "secret", "")

func kinesisCall(ctx context.Context, url string) error {
	c := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds, Retryer: aws.NopRetryer{}})
	_, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("it")})
	return err
}

func s3Call(ctx context.Context, url string) error {
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds, Retryer: aws.NopRetryer{}, UsePathStyle: true})
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("x")})
	return err
}

func sagemakerCall(ctx context.Context, url string) error {
	c := sagemakerruntime.New(sagemakerruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds, Retryer: aws.NopRetryer{}})
	_, err := c.InvokeEndpoint(ctx, &sagemakerruntime.InvokeEndpointInput{EndpointName: aws.String("e"), Body: []byte("1,2\n"), ContentType: aws.String("text/csv")})
	return err
}

func kinesisError(status int, typ string) answer {
	return answer{status: status, header: map[string]string{"Content-Type": "application/x-amz-json-1.1"},
		body: `{"__type":"` + typ + `","message":"m"}`}
}

func s3Error(status int, code string) answer {
	return answer{status: status, header: map[string]string{"Content-Type": "application/xml"},
		body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>m</Message></Error>`}
}

func sagemakerError(status int, typ string) answer {
	return answer{status: status, header: map[string]string{"Content-Type": "application/json", "X-Amzn-ErrorType": typ},
		body: `{"message":"m"}`}
}

// Errors as the SDK's clients really return them, from answers a service
// could give, over the wire.
func TestClassifyRealClientErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(context.Context, string) error
		a    answer
		want Class
	}{
		{"kinesis throughput", kinesisCall, kinesisError(400, "ProvisionedThroughputExceededException"), Throttled},
		{"kinesis KMS throttling", kinesisCall, kinesisError(400, "KMSThrottlingException"), Throttled},
		{"kinesis expired iterator", kinesisCall, kinesisError(400, "ExpiredIteratorException"), Expired},
		{"kinesis access denied", kinesisCall, kinesisError(400, "AccessDeniedException"), Unavailable},
		{"kinesis KMS key disabled", kinesisCall, kinesisError(400, "KMSDisabledException"), Unavailable},
		{"kinesis stream missing", kinesisCall, kinesisError(400, "ResourceNotFoundException"), Unavailable},
		{"kinesis invalid argument", kinesisCall, kinesisError(400, "InvalidArgumentException"), Invalid},
		{"kinesis bad credentials", kinesisCall, kinesisError(400, "UnrecognizedClientException"), Unavailable},
		{"kinesis internal failure", kinesisCall, kinesisError(500, "InternalFailureException"), ServerError},
		{"kinesis 503 without a body", kinesisCall, answer{status: 503}, ServerError},
		{"s3 slow down", s3Call, s3Error(503, "SlowDown"), Throttled},
		{"s3 bucket missing", s3Call, s3Error(404, "NoSuchBucket"), Unavailable},
		{"s3 access denied", s3Call, s3Error(403, "AccessDenied"), Unavailable},
		{"s3 idle upload", s3Call, s3Error(400, "RequestTimeout"), Timeout},
		{"s3 internal error", s3Call, s3Error(500, "InternalError"), ServerError},
		{"sagemaker throttling", sagemakerCall, sagemakerError(400, "ThrottlingException"), Throttled},
		{"sagemaker model loading", sagemakerCall, sagemakerError(429, "ModelNotReadyException"), ServerError},
		{"sagemaker bad input", sagemakerCall, sagemakerError(400, "ValidationError"), Invalid},
		{"sagemaker model error", sagemakerCall, sagemakerError(424, "ModelError"), Invalid},
		{"sagemaker 429 unmodeled", sagemakerCall, answer{status: 429}, Throttled},
		{"connection closed", kinesisCall, answer{hangUp: true}, Connection},
	} {
		err := tc.call(context.Background(), serve(t, tc.a))
		if err == nil {
			t.Errorf("%s: the call succeeded", tc.name)
			continue
		}
		if got := Classify(err); got != tc.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", tc.name, err, got, tc.want)
		}
	}
}

// A server that never answers: the call ends with the caller's context,
// as a timeout when it was a deadline and canceled when it was canceled.
func TestClassifyRealClientGivingUp(t *testing.T) {
	url := serve(t, answer{hold: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := kinesisCall(ctx, url); Classify(err) != Timeout {
		t.Errorf("deadline: Classify(%v) = %v, want timeout", err, Classify(err))
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := kinesisCall(ctx, url); Classify(err) != Canceled {
		t.Errorf("canceled: Classify(%v) = %v, want canceled", err, Classify(err))
	}
	// A port nothing listens on any more: the connection is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	if err := kinesisCall(context.Background(), "http://"+addr); err == nil {
		t.Error("a call to a closed port succeeded")
	} else if Classify(err) != Connection {
		t.Errorf("refused: Classify(%v) = %v, want connection", err, Classify(err))
	}
}
