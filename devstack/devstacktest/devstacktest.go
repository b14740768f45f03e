// Package devstacktest hands integration tests a running local AWS stack and
// fresh, uniquely named resources on it, so that every package can run its
// integration tests in parallel with the others without stepping on them.
//
// The stack is found, in order: in the directory named by
// STREAMSCORE_DEVSTACK_DIR (what `make test` starts once for all packages);
// in the repository's default stack directory if `streamscore dev up` is
// running; otherwise this test binary starts a private stack on first use and
// Main stops it when the tests are done.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }
//
// A server that cannot start fails the test loudly. Under -short, New skips
// the test, for quick local loops; CI never passes -short.
package devstacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/streamscore/streamscore/devstack"
)

// DirEnv names the variable through which `make test` shares one stack with
// every test binary.
const DirEnv = "STREAMSCORE_DEVSTACK_DIR"

// Env is a running stack with ready clients.
type Env struct {
	*devstack.Clients
	// Endpoints are the servers' base URLs.
	Endpoints devstack.Endpoints
	// Dir is the stack's state directory.
	Dir string
}

// The stack is shared by every test in the binary, so it is the one piece
// of package state: guarded, started at most once, stopped by Main.
var shared struct {
	mu      sync.Mutex
	env     *Env
	err     error
	private *devstack.State
}

// Main runs the tests and then stops a stack this binary started for itself.
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.private != nil {
		if err := shared.private.Down(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "devstacktest: stopping the private stack:", err)
			if code == 0 {
				code = 1
			}
		}
		_ = os.RemoveAll(shared.private.Dir)
		shared.private = nil
	}
	return code
}

// New returns the stack for this test binary, starting one if needed.
func New(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the local AWS stack (run without -short)")
	}
	env, err := acquire()
	if err != nil {
		t.Fatalf("devstacktest: the local AWS stack is not available: %v", err)
	}
	return env
}

func acquire() (*Env, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.env != nil || shared.err != nil {
		return shared.env, shared.err
	}
	shared.env, shared.err = find()
	return shared.env, shared.err
}

func find() (*Env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if dir := os.Getenv(DirEnv); dir != "" {
		st, err := devstack.Load(dir)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", DirEnv, dir, err)
		}
		if err := st.Check(ctx); err != nil {
			return nil, fmt.Errorf("the stack in %s (%s) is unhealthy: %w", dir, DirEnv, err)
		}
		return envFor(st), nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root, err := devstack.FindRoot(wd)
	if err != nil {
		return nil, err
	}
	if st, err := devstack.Load(devstack.DefaultDir(root)); err == nil && st.Check(ctx) == nil {
		return envFor(st), nil
	}
	dir, err := os.MkdirTemp("", "streamscore-devstack-")
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := devstack.Up(ctx, devstack.Config{Root: root, Dir: dir, Logger: log, DieWithParent: true})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	shared.private = st
	return envFor(st), nil
}

func envFor(st *devstack.State) *Env {
	return &Env{Clients: st.Endpoints.Clients(), Endpoints: st.Endpoints, Dir: st.Dir}
}

// Name returns a resource name unique to this run: prefix plus random hex.
// It is valid for streams, tables, buckets, topics and queues.
func (e *Env) Name(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	prefix = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, prefix)
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Ctx returns a context that ends with the test (or after two minutes).
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// CreateStream creates an ACTIVE stream with the given shard count, deleted
// when the test ends.
func (e *Env) CreateStream(t testing.TB, shards int) string {
	t.Helper()
	name := e.Name(t.Name())
	if _, err := devstack.EnsureStream(Ctx(t), e.Kinesis, name, shards); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = e.Kinesis.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	})
	return name
}

// CreateBucket creates an empty bucket, emptied and deleted when the test ends.
func (e *Env) CreateBucket(t testing.TB) string {
	t.Helper()
	name := e.Name("b-" + t.Name())
	if len(name) > 63 {
		name = e.Name("b")
	}
	if err := devstack.EnsureBucket(Ctx(t), e.S3, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.deleteBucket(name) })
	return name
}

func (e *Env) deleteBucket(name string) {
	ctx := context.Background()
	p := s3.NewListObjectsV2Paginator(e.S3, &s3.ListObjectsV2Input{Bucket: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return
		}
		var ids []s3types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if len(ids) > 0 {
			_, _ = e.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &s3types.Delete{Objects: ids}})
		}
	}
	_, _ = e.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)})
}

// CreateTopicQueue creates a topic and a queue subscribed to it. FIFO names
// get the required ".fifo" suffix.
func (e *Env) CreateTopicQueue(t testing.TB, fifo bool) (topicARN, queueURL string) {
	t.Helper()
	ctx := Ctx(t)
	topic, queue := e.Name("t-"+t.Name()), e.Name("q-"+t.Name())
	if fifo {
		topic, queue = topic+".fifo", queue+".fifo"
	}
	arn, err := devstack.EnsureTopic(ctx, e.SNS, topic, fifo)
	if err != nil {
		t.Fatal(err)
	}
	url, err := devstack.Subscribe(ctx, e.Clients, arn, queue, fifo)
	if err != nil {
		t.Fatal(err)
	}
	return arn, url
}

// CreateQueue creates a queue and returns its URL.
func (e *Env) CreateQueue(t testing.TB, fifo bool) string {
	t.Helper()
	name := e.Name("q-" + t.Name())
	if fifo {
		name += ".fifo"
	}
	url, _, err := devstack.EnsureQueue(Ctx(t), e.SQS, name, fifo)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// ErrNoToxiproxy is returned when the stack runs without toxiproxy.
var ErrNoToxiproxy = errors.New("devstacktest: the stack has no toxiproxy")

// Proxy puts a toxiproxy proxy in front of upstream (host:port or an
// http:// URL) and removes it when the test ends. Point the client under
// test at the returned proxy's URL().
func (e *Env) Proxy(t testing.TB, upstream string) *devstack.Proxy {
	t.Helper()
	if e.Endpoints.Toxiproxy == "" {
		t.Fatal(ErrNoToxiproxy)
	}
	upstream = strings.TrimPrefix(strings.TrimPrefix(upstream, "http://"), "https://")
	tp := &devstack.ToxiproxyClient{URL: e.Endpoints.Toxiproxy}
	p, err := tp.CreateProxy(Ctx(t), e.Name("p-"+t.Name()), upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Delete(context.Background()) })
	return p
}
