package devstack

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// KinesisServer names a local server that can play the stack's Kinesis.
// They differ in what they implement and how fast they are (see
// docs/performance.md), so a run picks the one it needs.
type KinesisServer string

// The Kinesis servers a stack can run.
const (
	// KinesisLocal (kinesis-local, a build of kinesis-mock) is the default:
	// the most complete (resharding with ChildShards, enhanced fan-out), and
	// the slowest.
	KinesisLocal KinesisServer = "kinesis-local"
	// Kinesalite is an order of magnitude faster; it has no enhanced
	// fan-out, no UpdateShardCount and no ChildShards in GetRecords.
	Kinesalite KinesisServer = "kinesalite"
	// Kumo is the Kinesis service of kumo (the stack's CloudWatch server) in
	// a process of its own: streams, puts and reads only, no fan-out and no
	// resharding.
	Kumo KinesisServer = "kumo"
)

// KinesisServers lists the Kinesis servers a stack can run, the default first.
func KinesisServers() []KinesisServer { return []KinesisServer{KinesisLocal, Kinesalite, Kumo} }

// ParseKinesisServer checks a Kinesis server name; "" means the default.
func ParseKinesisServer(name string) (KinesisServer, error) {
	return parseChoice("Kinesis server", name, KinesisServers())
}

// parseChoice checks name against the known choices, the default first;
// "" means the default.
func parseChoice[T ~string](what, name string, known []T) (T, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return known[0], nil
	}
	for _, k := range known {
		if string(k) == name {
			return k, nil
		}
	}
	return "", fmt.Errorf("devstack: unknown %s %q (known: %v)", what, name, known)
}

// kinesisSpec is how to run the configured Kinesis server.
func kinesisSpec(cfg Config) serverSpec {
	node := NodeDir(cfg.Root)
	preload := filepath.Join(node, "loopback.js")
	ready := func(ctx context.Context, ep string) error {
		_, err := Endpoints{Kinesis: ep}.Clients().Kinesis.ListStreams(ctx, &kinesis.ListStreamsInput{})
		return err
	}
	server, err := ParseKinesisServer(string(cfg.KinesisServer))
	if err != nil {
		panic(err) // Up and Load validate the name first
	}
	switch server {
	case Kinesalite:
		return serverSpec{
			service: Kinesis,
			marker:  "kinesalite/cli.js",
			command: func(port int) (string, []string, []string, string) {
				// Binds 0.0.0.0 whatever it is told: the loopback preload keeps
				// it on loopback. Like dynalite it rethrows a request's stream
				// error, so a client dropping a call midway (a cancelled
				// context, a reset) killed it: hence client-abort.js.
				return "node", []string{"-r", preload, "-r", filepath.Join(node, "client-abort.js"),
					filepath.Join(node, "node_modules", "kinesalite", "cli.js"),
					"--port", strconv.Itoa(port),
					"--createStreamMs", "50", "--deleteStreamMs", "50", "--updateStreamMs", "50",
					"--shardLimit", "2000"}, nil, ""
			},
			ready: ready,
		}
	case Kumo:
		return serverSpec{
			service: Kinesis,
			// Both kumo processes (CloudWatch and Kinesis) share this marker;
			// Down signals by pid, the marker only guards against pid reuse.
			marker: "kumo",
			command: func(port int) (string, []string, []string, string) {
				return filepath.Join(BinDir(cfg.Root), "kumo"), nil,
					[]string{"KUMO_HOST=127.0.0.1", "KUMO_PORT=" + strconv.Itoa(port), "KUMO_LOG_LEVEL=warn"}, ""
			},
			ready: ready,
		}
	}
	return serverSpec{
		service:  Kinesis,
		marker:   "kinesis-local/main.js",
		twoPorts: true,
		command: func(port int) (string, []string, []string, string) {
			return "node", []string{"-r", preload, filepath.Join(node, "node_modules", "kinesis-local", "main.js")},
				[]string{
					"KINESIS_MOCK_PLAIN_PORT=" + strconv.Itoa(port),
					// The TLS port is unused; park it next to the plain one.
					"KINESIS_MOCK_TLS_PORT=" + strconv.Itoa(port+1),
					"SHARD_LIMIT=2000", "ON_DEMAND_STREAM_COUNT_LIMIT=100",
					"CREATE_STREAM_DURATION=50ms", "DELETE_STREAM_DURATION=50ms",
					"REGISTER_STREAM_CONSUMER_DURATION=50ms", "DEREGISTER_STREAM_CONSUMER_DURATION=50ms",
					"MERGE_SHARDS_DURATION=50ms", "SPLIT_SHARD_DURATION=50ms",
					"UPDATE_SHARD_COUNT_DURATION=50ms", "UPDATE_STREAM_MODE_DURATION=50ms",
					"LOG_LEVEL=WARN", "ROOT_LOG_LEVEL=ERROR", "SHOULD_PERSIST_DATA=false",
				},
				// kinesis-local reads its TLS material (server.json) from the working directory.
				filepath.Join(node, "node_modules", "kinesis-local")
		},
		ready: ready,
	}
}
