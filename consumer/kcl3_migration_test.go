package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// migrationConfig is kcl3Config for a worker migrating from 2.x: the state
// is read every second and the fleet must be ready for 3 s (Java: 60 s and
// 10 minutes).
func migrationConfig(table, worker string, v ClientVersion, streams ...string) Config {
	cfg := kcl3Config(table, worker, streams...)
	cfg.ClientVersion = v
	if v != ClientVersion2X {
		cfg.KCL3.MigrationPollInterval = time.Second
		cfg.KCL3.MigrationReadyTime = 3 * time.Second
	} else {
		cfg.KCL3 = KCL3Config{}
	}
	return cfg
}

func clientVersion(t *testing.T, c *Consumer) string {
	t.Helper()
	for _, v := range []string{coordstate.ClientVersionUpgradeFrom2X, coordstate.ClientVersion2X, coordstate.ClientVersion3XWithRollback, coordstate.ClientVersion3X} {
		if testutil.ToFloat64(c.m.clientVersion.WithLabelValues(v)) == 1 {
			return v
		}
	}
	return ""
}

// TestKCL3MigrationFrom2XAndBack: a fleet moves from 2.x to 3.x and back
// while records are written, as Java KCL 3.x's migration does. Two
// 2x-compatible workers and one pure 2.x worker share the leases by
// count; the move waits while the 2.x worker (which reports no metrics)
// holds leases. Once it has stopped, the fleet moves to 3.x with
// rollback, a leader is elected, and a 3x-configured worker that joins
// follows the recorded state. A rollback returns every worker to 2.x.
// Nothing written is lost throughout.
func TestKCL3MigrationFrom2XAndBack(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 4)
	table := env.Name("kcl3migrate")
	col := newCollector()
	prod := startProducer(t, env.Kinesis, stream, 100*time.Millisecond, 100, 4, nil)

	a := newConsumer(t, migrationConfig(table, "ma", ClientVersionCompatibleWith2X, stream), env.Kinesis, env.DynamoDB)
	run(t, a, col.handler("ma", nil))
	b := newConsumer(t, migrationConfig(table, "mb", ClientVersionCompatibleWith2X, stream), env.Kinesis, env.DynamoDB)
	run(t, b, col.handler("mb", nil))
	// The 2x-compatible workers create the lease table, with the lease-owner
	// index: the local server cannot add it to a table a 2.x worker made
	// (real DynamoDB can), and the move to 3.x waits for the index.
	waitFor(t, 90*time.Second, "the migrating workers holding leases", func() bool {
		return len(a.HeldLeases()) > 0 && len(b.HeldLeases()) > 0
	})
	old := newConsumer(t, migrationConfig(table, "old", ClientVersion2X, stream), env.Kinesis, env.DynamoDB)
	stopOld := run(t, old, col.handler("old", nil))
	waitFor(t, 90*time.Second, "every worker holding leases", func() bool {
		return len(a.HeldLeases()) > 0 && len(b.HeldLeases()) > 0 && len(old.HeldLeases()) > 0
	})
	if v := clientVersion(t, a); v != coordstate.ClientVersionUpgradeFrom2X {
		t.Fatalf("a runs in %q, want %s", v, coordstate.ClientVersionUpgradeFrom2X)
	}
	layout := coordstate.SingleTable(table)
	state := func() string {
		m, ok, err := coordstate.GetMigration(context.Background(), env.DynamoDB, layout)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ""
		}
		return m.ClientVersion
	}
	// The 2.x worker holds leases and reports nothing: three ready times
	// (and their polls) later the fleet is still migrating.
	time.Sleep(3 * (3*time.Second + 2*time.Second))
	if s := state(); s != coordstate.ClientVersionUpgradeFrom2X {
		t.Fatalf("state %s while a 2.x worker without metrics holds leases; want %s", s, coordstate.ClientVersionUpgradeFrom2X)
	}

	if err := stopOld(); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, 2*time.Minute, "the move to 3.x", func() bool { return state() == coordstate.ClientVersion3XWithRollback })
	t.Logf("moved to %s %v after the 2.x worker stopped", coordstate.ClientVersion3XWithRollback, d)
	waitFor(t, time.Minute, "both workers in 3.x and one leading", func() bool {
		return clientVersion(t, a) == coordstate.ClientVersion3XWithRollback && clientVersion(t, b) == coordstate.ClientVersion3XWithRollback &&
			testutil.ToFloat64(a.m.leader)+testutil.ToFloat64(b.m.leader) == 1
	})
	late := newConsumer(t, migrationConfig(table, "late", ClientVersion3X, stream), env.Kinesis, env.DynamoDB)
	run(t, late, col.handler("late", nil))
	waitFor(t, time.Minute, "the 3x-configured worker finishing the migration", func() bool {
		return state() == coordstate.ClientVersion3X && clientVersion(t, late) == coordstate.ClientVersion3X
	})
	// Finished: no way back.
	if err := RollBackTo2X(context.Background(), env.DynamoDB, table, "", "test"); err == nil {
		t.Fatal("rolled back from CLIENT_VERSION_3X")
	}

	prod.halt()
	want := prod.produced()
	waitFor(t, time.Minute, "every produced record delivered", func() bool { return col.has(want) == 0 })
	t.Logf("%d records, none lost across the migration", len(want))
}

// TestKCL3RollBack: a fleet in 3.x with rollback goes back to 2.x when
// told, and forward again.
func TestKCL3RollBack(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 4)
	table := env.Name("kcl3rollback")
	col := newCollector()
	prod := startProducer(t, env.Kinesis, stream, 100*time.Millisecond, 100, 4, nil)
	var ws []*Consumer
	for _, id := range []string{"a", "b"} {
		c := newConsumer(t, migrationConfig(table, id, ClientVersionCompatibleWith2X, stream), env.Kinesis, env.DynamoDB)
		run(t, c, col.handler(id, nil))
		ws = append(ws, c)
	}
	all := func(v string) bool {
		for _, c := range ws {
			if clientVersion(t, c) != v {
				return false
			}
		}
		return true
	}
	waitFor(t, 2*time.Minute, "both workers in 3.x with rollback", func() bool { return all(coordstate.ClientVersion3XWithRollback) })
	if err := RollBackTo2X(context.Background(), env.DynamoDB, table, "", "test"); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, time.Minute, "both workers back in 2.x, none leading", func() bool {
		return all(coordstate.ClientVersion2X) && testutil.ToFloat64(ws[0].m.leader)+testutil.ToFloat64(ws[1].m.leader) == 0
	})
	t.Logf("rolled back in %v", d)
	// Rolled back, they balance by count as 2.x workers do.
	waitFor(t, time.Minute, "a 2/2 split", func() bool {
		o := owners(t, env.DynamoDB, table)
		return o["a"] == 2 && o["b"] == 2
	})
	if err := RollForward(context.Background(), env.DynamoDB, table, "", "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "both workers in 3.x with rollback again", func() bool { return all(coordstate.ClientVersion3XWithRollback) })

	prod.halt()
	want := prod.produced()
	waitFor(t, time.Minute, "every produced record delivered", func() bool { return col.has(want) == 0 })
}
