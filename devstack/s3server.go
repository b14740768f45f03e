package devstack

import (
	"context"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server names a local server that can play the stack's S3.
type S3Server string

// The S3 servers a stack can run.
const (
	// Versitygw is the default: it checks SigV4 signatures for real and
	// writes AWS-style multipart ETags, which the tests rely on. It is a
	// Go server that takes minutes to compile on a fresh machine.
	Versitygw S3Server = "versitygw"
	// S3rver is a Node server installed with the others by npm in seconds:
	// buckets, objects and listings, no signature checks. `make demo`
	// runs it so a fresh machine compiles no server before its first
	// result.
	S3rver S3Server = "s3rver"
)

// S3Servers lists the S3 servers a stack can run, the default first.
func S3Servers() []S3Server { return []S3Server{Versitygw, S3rver} }

// ParseS3Server checks an S3 server name; "" means the default.
func ParseS3Server(name string) (S3Server, error) {
	return parseChoice("S3 server", name, S3Servers())
}

// s3Spec is how to run the configured S3 server.
func s3Spec(cfg Config) serverSpec {
	data := filepath.Join(cfg.Dir, "s3")
	ready := func(ctx context.Context, ep string) error {
		_, err := Endpoints{S3: ep}.Clients().S3.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err
	}
	if cfg.S3Server == S3rver {
		return serverSpec{
			service: S3,
			marker:  "s3rver.js",
			command: func(port int) (string, []string, []string, string) {
				_ = os.MkdirAll(data, 0o755)
				return "node", []string{filepath.Join(NodeDir(cfg.Root), "s3rver.js"),
					strconv.Itoa(port), data, AccessKeyID, SecretAccessKey}, nil, ""
			},
			ready: ready,
		}
	}
	return serverSpec{
		service: S3,
		marker:  "versitygw",
		command: func(port int) (string, []string, []string, string) {
			_ = os.MkdirAll(data, 0o755)
			return filepath.Join(BinDir(cfg.Root), "versitygw"), []string{
				"--port", "127.0.0.1:" + strconv.Itoa(port),
				"--access", AccessKeyID, "--secret", SecretAccessKey,
				"posix", data}, nil, ""
		},
		ready: ready,
	}
}
