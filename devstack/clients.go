package devstack

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Endpoints are the base URLs of a running stack's servers. An empty field
// means the service is not running.
type Endpoints struct {
	Kinesis    string `json:"kinesis,omitempty"`
	DynamoDB   string `json:"dynamodb,omitempty"`
	S3         string `json:"s3,omitempty"`
	SNS        string `json:"sns,omitempty"`
	SQS        string `json:"sqs,omitempty"`
	CloudWatch string `json:"cloudwatch,omitempty"`
	Toxiproxy  string `json:"toxiproxy,omitempty"`
}

// EnvVars returns the standard AWS SDK variables that point any SDK-based
// tool (streamscore itself included) at the stack: per-service
// AWS_ENDPOINT_URL_<SERVICE>, the stack's static credentials and region.
func (e Endpoints) EnvVars() [][2]string {
	vars := [][2]string{
		{"AWS_ACCESS_KEY_ID", AccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", SecretAccessKey},
		{"AWS_REGION", Region},
		{"AWS_DEFAULT_REGION", Region},
		// The local CloudWatch server (kumo) cannot read gzip-compressed
		// PutMetricData bodies, which the SDK sends by default.
		{"AWS_DISABLE_REQUEST_COMPRESSION", "true"},
	}
	for _, kv := range [][2]string{
		{"AWS_ENDPOINT_URL_KINESIS", e.Kinesis},
		{"AWS_ENDPOINT_URL_DYNAMODB", e.DynamoDB},
		{"AWS_ENDPOINT_URL_S3", e.S3},
		{"AWS_ENDPOINT_URL_SNS", e.SNS},
		{"AWS_ENDPOINT_URL_SQS", e.SQS},
		{"AWS_ENDPOINT_URL_CLOUDWATCH", e.CloudWatch},
		// The CloudWatch server (kumo) emulates EventBridge too,
		{"AWS_ENDPOINT_URL_EVENTBRIDGE", e.CloudWatch},
		{"AWS_ENDPOINT_URL_SFN", e.CloudWatch}, // and Step Functions
	} {
		if kv[1] != "" {
			vars = append(vars, kv)
		}
	}
	return vars
}

// Clients are AWS SDK clients bound to a stack's endpoints.
type Clients struct {
	// AWS is the shared configuration: region, static credentials, no endpoint.
	AWS        aws.Config
	Kinesis    *kinesis.Client
	DynamoDB   *dynamodb.Client
	S3         *s3.Client
	SNS        *sns.Client
	SQS        *sqs.Client
	CloudWatch *cloudwatch.Client
}

// Clients builds SDK clients for the stack. The configuration is assembled by
// hand rather than with config.LoadDefaultConfig so that nothing from the
// developer's environment (profiles, a global AWS_CA_BUNDLE, real endpoints)
// can leak into a local run.
func (e Endpoints) Clients() *Clients {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		HTTPClient: &http.Client{
			Timeout: 60 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil, // loopback only: never route through a proxy from the environment
				MaxIdleConns:        256,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     30 * time.Second,
				ForceAttemptHTTP2:   false,
			},
		},
		RetryMaxAttempts: 5,
	}
	ep := func(u string) *string {
		if u == "" {
			// A client for a service that is not running fails fast and
			// clearly instead of reaching for real AWS.
			u = "http://127.0.0.1:1"
		}
		return aws.String(u)
	}
	return &Clients{
		AWS:      cfg,
		Kinesis:  kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = ep(e.Kinesis) }),
		DynamoDB: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = ep(e.DynamoDB) }),
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.BaseEndpoint = ep(e.S3)
			o.UsePathStyle = true
		}),
		SNS: sns.NewFromConfig(cfg, func(o *sns.Options) { o.BaseEndpoint = ep(e.SNS) }),
		SQS: sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = ep(e.SQS) }),
		CloudWatch: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
			o.BaseEndpoint = ep(e.CloudWatch)
			// kumo does not inflate gzip request bodies; real CloudWatch does.
			o.DisableRequestCompression = true
		}),
	}
}

func (e Endpoints) String() string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"kinesis", e.Kinesis}, {"dynamodb", e.DynamoDB}, {"s3", e.S3}, {"sns", e.SNS},
		{"sqs", e.SQS}, {"cloudwatch", e.CloudWatch}, {"toxiproxy", e.Toxiproxy},
	} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s=%s ", kv[0], kv[1])
		}
	}
	return strings.TrimSpace(b.String())
}
