// Package devstack starts, provisions and stops the local AWS-protocol servers
// that streamscore's tests, demo and developers run against: kinesis-local
// (Kinesis), dynalite (DynamoDB), versitygw (S3), fauxqs (SNS and SQS), kumo
// (CloudWatch) and toxiproxy (fault injection). No Docker and no AWS account.
//
// Every server listens on 127.0.0.1 on a port below 32768 (the kernel hands out
// 32768-60999 for outgoing connections, so a fixed port there can be taken),
// is declared ready only after a real API call succeeds, and runs in a process
// group of its own so that Down stops exactly what Up started. The state of a
// running stack (pids, ports, logs) lives in a directory, by default
// .devstack/stack under the repository root, which is git-ignored.
//
// Nothing in this package is used by production code paths: the pipeline only
// ever sees the standard AWS_ENDPOINT_URL_* variables that Env prints.
package devstack

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Service names one server of the stack.
type Service string

// The services a stack can run.
const (
	Kinesis    Service = "kinesis"
	DynamoDB   Service = "dynamodb"
	S3         Service = "s3"
	SNSSQS     Service = "sns-sqs"
	CloudWatch Service = "cloudwatch"
	Toxiproxy  Service = "toxiproxy"
)

// AllServices lists every service in start order. The slowest starter
// (kinesis-local, a Scala.js program) goes first so the others start while it
// warms up.
func AllServices() []Service {
	return []Service{Kinesis, DynamoDB, S3, SNSSQS, CloudWatch, Toxiproxy}
}

// ParseServices turns a comma-separated list such as "kinesis,dynamodb" into
// services, rejecting unknown names.
func ParseServices(list string) ([]Service, error) {
	if strings.TrimSpace(list) == "" {
		return AllServices(), nil
	}
	var out []Service
	for name := range strings.SplitSeq(list, ",") {
		s := Service(strings.TrimSpace(name))
		if !slices.Contains(AllServices(), s) {
			return nil, fmt.Errorf("devstack: unknown service %q (known: %v)", s, AllServices())
		}
		out = append(out, s)
	}
	return out, nil
}

// Credentials used by every client of the local stack. versitygw checks SigV4
// signatures for real, so clients must sign with exactly these.
const (
	AccessKeyID     = "streamscoredev"
	SecretAccessKey = "streamscore-devstack-secret"
	Region          = "us-east-1"
)

// FindRoot walks up from dir to the streamscore repository root, recognised by
// devstack/node/package.json next to go.mod.
func FindRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("devstack: %w", err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if fileExists(filepath.Join(d, "go.mod")) && fileExists(filepath.Join(d, "devstack", "node", "package.json")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("devstack: no streamscore repository (go.mod with devstack/node/package.json) at or above %s", abs)
		}
	}
}

// DefaultDir is where a stack started from the repository at root keeps its state.
func DefaultDir(root string) string { return filepath.Join(root, ".devstack", "stack") }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
