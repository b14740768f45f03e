package coordstate

import (
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func lockItemOf(t *testing.T, env *devstacktest.Env, l Layout) map[string]types.AttributeValue {
	t.Helper()
	table, keyAttr := l.stateTable()
	return getRaw(t, env, table, keyAttr, LeaderKey)
}

func sAttr(item map[string]types.AttributeValue, attr string) string {
	if v, ok := item[attr].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// TestLeaderContention: two workers asking at once, exactly one becomes
// leader; the item is what the lock client writes.
func TestLeaderContention(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	for name, l := range layouts(t, env) {
		t.Run(name, func(t *testing.T) {
			ls := []*Leader{NewLeader(env.DynamoDB, l, LeaderConfig{Owner: "w1"}), NewLeader(env.DynamoDB, l, LeaderConfig{Owner: "w2"})}
			got := make([]bool, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range ls {
				wg.Go(func() { got[i], errs[i] = ls[i].IsLeader(ctx) })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil || got[0] == got[1] {
				t.Fatalf("IsLeader = %v, errors %v: want exactly one leader", got, errs)
			}
			winner := "w1"
			if got[1] {
				winner = "w2"
			}
			item := lockItemOf(t, env, l)
			if sAttr(item, attrOwnerName) != winner || sAttr(item, attrLeaseDuration) != "120000" || !uuidRE.MatchString(sAttr(item, attrRVN)) {
				t.Errorf("lock item %v, want ownerName %s, leaseDuration \"120000\", a UUID version", item, winner)
			}
			if et := sAttr(item, AttrEntityType); (et == EntityLeader) != l.Single || (!l.Single && len(item) != 4) {
				t.Errorf("lock item %v: entityType belongs in the single table only", item)
			}
		})
	}
}

// TestLeaderHeartbeatKeepsIt: while the holder keeps asking, it heartbeats
// (the version changes) and the other worker, asking all along for more
// than two lease durations, never takes over.
func TestLeaderHeartbeatKeepsIt(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["single"]
	cfg := LeaderConfig{LeaseDuration: 3 * time.Second, Heartbeat: 100 * time.Millisecond}
	cfg.Owner = "holder"
	a := NewLeader(env.DynamoDB, l, cfg)
	cfg.Owner = "other"
	b := NewLeader(env.DynamoDB, l, cfg)
	if ok, err := a.IsLeader(ctx); !ok || err != nil {
		t.Fatalf("first IsLeader = %v, %v", ok, err)
	}
	versions := map[string]bool{}
	end := time.Now().Add(2*cfg.LeaseDuration + time.Second)
	for time.Now().Before(end) {
		if ok, err := a.IsLeader(ctx); !ok || err != nil {
			t.Fatalf("holder lost the lock: %v, %v", ok, err)
		}
		if ok, err := b.IsLeader(ctx); ok || err != nil {
			t.Fatalf("the other worker took a lock that was heartbeating: %v, %v", ok, err)
		}
		versions[sAttr(lockItemOf(t, env, l), attrRVN)] = true
		time.Sleep(50 * time.Millisecond)
	}
	if len(versions) < 3 {
		t.Errorf("saw %d lock versions in %v, want heartbeats", len(versions), 2*cfg.LeaseDuration)
	}
}

// TestLeaderTakeoverAfterLeaseDuration: a holder that stops heartbeating
// (a killed process) loses the lock to a worker that saw it unchanged for
// the lease duration, not before; the old holder then knows it is not
// leader, and its Release does not disturb the new one.
func TestLeaderTakeoverAfterLeaseDuration(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	for name, l := range layouts(t, env) {
		t.Run(name, func(t *testing.T) {
			cfg := LeaderConfig{Owner: "dead", LeaseDuration: 2 * time.Second, Heartbeat: 500 * time.Millisecond}
			a := NewLeader(env.DynamoDB, l, cfg)
			cfg.Owner = "taker"
			b := NewLeader(env.DynamoDB, l, cfg)
			if ok, err := a.IsLeader(ctx); !ok || err != nil {
				t.Fatalf("IsLeader = %v, %v", ok, err)
			}
			beforeFirstSight := time.Now()
			if ok, err := b.IsLeader(ctx); ok || err != nil {
				t.Fatalf("taker at first sight: %v, %v", ok, err)
			}
			eventually(t, "takeover", 30*time.Second, func() (bool, error) { return b.IsLeader(ctx) })
			if waited := time.Since(beforeFirstSight); waited < cfg.LeaseDuration {
				t.Errorf("took over after %v, before the lease duration %v ran out", waited, cfg.LeaseDuration)
			}
			if sAttr(lockItemOf(t, env, l), attrOwnerName) != "taker" {
				t.Errorf("lock item %v", lockItemOf(t, env, l))
			}
			if ok, err := a.IsLeader(ctx); ok || err != nil {
				t.Errorf("the old holder still says %v, %v", ok, err)
			}
			if err := a.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if sAttr(lockItemOf(t, env, l), attrOwnerName) != "taker" {
				t.Error("the old holder's Release removed the new holder's lock")
			}
		})
	}
}

// TestLeaderReleaseHandsOverAtOnce: with a lease duration of an hour, the
// other worker acquires right after Release, without waiting it out.
func TestLeaderReleaseHandsOverAtOnce(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["three"]
	cfg := LeaderConfig{Owner: "a", LeaseDuration: time.Hour, Heartbeat: 100 * time.Millisecond}
	a := NewLeader(env.DynamoDB, l, cfg)
	cfg.Owner = "b"
	b := NewLeader(env.DynamoDB, l, cfg)
	if ok, err := a.IsLeader(ctx); !ok || err != nil {
		t.Fatalf("IsLeader = %v, %v", ok, err)
	}
	if ok, err := b.IsLeader(ctx); ok || err != nil {
		t.Fatalf("b = %v, %v", ok, err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if item := lockItemOf(t, env, l); len(item) != 0 {
		t.Fatalf("Release left %v", item)
	}
	eventually(t, "b acquires", 30*time.Second, func() (bool, error) { return b.IsLeader(ctx) })
	if ok, err := a.IsLeader(ctx); ok || err != nil {
		t.Errorf("a after release = %v, %v", ok, err)
	}
}

// TestLeaderTakesOverJavaLock: a lock written by Java (fixture, with a
// short leaseDuration) whose owner stopped heartbeating is taken over once
// it has been unchanged for the item's leaseDuration, whatever ours is:
// what Java KCL itself never does (#1803).
func TestLeaderTakesOverJavaLock(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	for name, fx := range map[string]string{"three": fxLeaderLegacy, "single": fxLeaderSingle} {
		t.Run(name, func(t *testing.T) {
			l := layouts(t, env)[name]
			item := mustItem(t, fx)
			item[attrLeaseDuration] = sVal("1500")
			table, _ := l.stateTable()
			putRaw(t, env, table, item)
			g := NewLeader(env.DynamoDB, l, LeaderConfig{Owner: "go", LeaseDuration: time.Hour, Heartbeat: 100 * time.Millisecond})
			beforeFirstSight := time.Now()
			if ok, err := g.IsLeader(ctx); ok || err != nil {
				t.Fatalf("first sight of a Java lock: %v, %v", ok, err)
			}
			eventually(t, "takeover of the Java lock", 30*time.Second, func() (bool, error) { return g.IsLeader(ctx) })
			if waited := time.Since(beforeFirstSight); waited < 1500*time.Millisecond {
				t.Errorf("took over after %v, before the Java lock's 1.5 s ran out", waited)
			}
			got := lockItemOf(t, env, l)
			if sAttr(got, attrOwnerName) != "go" || sAttr(got, attrLeaseDuration) != "3600000" || sAttr(got, attrRVN) == sAttr(item, attrRVN) {
				t.Errorf("lock after takeover %v", got)
			}
		})
	}
}

// TestLeaderAcquiresReleasedLock: a lock client configured to keep
// released locks marks them isReleased instead of deleting; such a lock is
// free at once.
func TestLeaderAcquiresReleasedLock(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["three"]
	item := mustItem(t, fxLeaderLegacy)
	item[attrIsReleased] = sVal("1")
	putRaw(t, env, l.CoordinatorTable, item)
	g := NewLeader(env.DynamoDB, l, LeaderConfig{Owner: "go"})
	if ok, err := g.IsLeader(ctx); !ok || err != nil {
		t.Fatalf("IsLeader on a released lock = %v, %v", ok, err)
	}
	if _, still := lockItemOf(t, env, l)[attrIsReleased]; still {
		t.Error("isReleased survived the acquisition")
	}
}

// TestLeaderCallsPerHeartbeat: however often it is asked, a Leader makes
// at most one call per heartbeat period.
func TestLeaderCallsPerHeartbeat(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["single"]
	cfg := LeaderConfig{LeaseDuration: time.Hour, Heartbeat: 30 * time.Minute}
	db := newCounting(env.DynamoDB)
	cfg.Owner = "holder"
	a := NewLeader(db, l, cfg)
	cfg.Owner = "other"
	b := NewLeader(db, l, cfg)
	for range 20 {
		if ok, err := a.IsLeader(ctx); !ok || err != nil {
			t.Fatalf("holder: %v, %v", ok, err)
		}
		if ok, err := b.IsLeader(ctx); ok || err != nil {
			t.Fatalf("other: %v, %v", ok, err)
		}
	}
	// holder: GetItem + PutItem once; other: one GetItem.
	if g, p, u := db.get("GetItem"), db.get("PutItem"), db.get("UpdateItem"); g != 2 || p != 1 || u != 0 {
		t.Errorf("calls: %d GetItem, %d PutItem, %d UpdateItem; want 2, 1, 0", g, p, u)
	}
}
