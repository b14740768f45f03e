package promotion_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m)) }

var (
	v1 = promotion.Model{Key: "failure_v1", Path: "s3://models/failure/v1/model.tar.gz", Version: "\"etag-1\"", SHA256: "aa"}
	v2 = promotion.Model{Key: "failure_v2", Path: "s3://models/failure/v2/model.tar.gz", Version: "\"etag-2\"", SHA256: "bb"}
)

// table creates a decision table on the local stack, deleted when the
// test ends.
func table(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	env := devstacktest.New(t)
	name := env.Name("promotions")
	if err := dynamo.EnsureTable(devstacktest.Ctx(t), env.DynamoDB, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return env.DynamoDB, name
}

func newStore(t *testing.T, db dynamo.API, tbl, scorer string) *dynamo.Store {
	t.Helper()
	s, err := dynamo.NewStore(db, dynamo.Config{Table: tbl, Pipeline: "factory", Scorer: scorer, Configured: v1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPromoteThenRollback: with no decision the configured champion is
// current at generation 0; a promotion makes the challenger champion
// with the configured one as previous; a rollback restores it; each is
// recorded, newest first, and read back strongly consistent.
func TestPromoteThenRollback(t *testing.T) {
	db, tbl := table(t)
	ctx := devstacktest.Ctx(t)
	s := newStore(t, db, tbl, "failure")

	d, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 0 || d.Champion != v1 || !d.Previous.IsZero() || len(d.History) != 0 {
		t.Fatalf("before any decision: %+v, want generation 0 with the configured champion", d)
	}
	if _, err := s.Rollback(ctx, 0, "nothing yet", "test"); !errors.Is(err, promotion.ErrNoPrevious) {
		t.Fatalf("rollback with no decision: %v, want ErrNoPrevious", err)
	}

	p, err := s.Promote(ctx, 0, v2, "challenger v2 auc 0.91 beats champion v1 0.87", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p.Generation != 1 || p.Champion != v2 || p.Previous != v1 || p.Action != promotion.ActionPromote || p.By != "alice" || p.At.IsZero() {
		t.Fatalf("promotion = %+v", p.Entry)
	}
	got, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Entry != p.Entry || len(got.History) != 1 || got.History[0] != p.Entry {
		t.Fatalf("read back %+v\nwant %+v", got, p)
	}
	if _, err := s.Promote(ctx, 1, v2, "again", "alice"); !errors.Is(err, promotion.ErrAlreadyChampion) {
		t.Errorf("promoting the champion: %v, want ErrAlreadyChampion", err)
	}

	r, err := s.Rollback(ctx, 1, "precision fell", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if r.Generation != 2 || r.Champion != v1 || r.Previous != v2 || r.Action != promotion.ActionRollback || r.Reason != "precision fell" {
		t.Fatalf("rollback = %+v", r.Entry)
	}
	got, err = s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Champion != v1 || got.Generation != 2 || len(got.History) != 2 || got.History[0].Generation != 2 || got.History[1] != p.Entry {
		t.Fatalf("after rollback: %+v", got)
	}

	// A stale writer loses and writes nothing.
	_, err = s.Rollback(ctx, 1, "stale", "carol")
	var ce *promotion.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, promotion.ErrConflict) || ce.Expected != 1 || ce.Current != 2 {
		t.Fatalf("stale rollback: %v, want a promotion.ConflictError at generation 2", err)
	}
	if again, _ := s.Current(ctx); again.Entry != got.Entry {
		t.Errorf("a lost race changed the decision: %+v", again.Entry)
	}

	// Scorers are separate items.
	other := newStore(t, db, tbl, "churn")
	if d, err := other.Current(ctx); err != nil || d.Generation != 0 {
		t.Errorf("another scorer: %+v, %v", d, err)
	}
}

// TestPromoteConcurrentExactlyOneWins: writers that all read the same
// generation race to promote different models; exactly one wins, every
// other gets a ConflictError, and the item holds the winner's model.
func TestPromoteConcurrentExactlyOneWins(t *testing.T) {
	db, tbl := table(t)
	ctx := devstacktest.Ctx(t)
	for _, start := range []int64{0, 1} { // creating the item, then replacing it
		const writers = 6
		var wg sync.WaitGroup
		errs := make([]error, writers)
		ready := make(chan struct{})
		for i := range writers {
			wg.Go(func() {
				s := newStore(t, db, tbl, "failure")
				<-ready
				to := promotion.Model{Key: fmt.Sprintf("m%d-%d", start, i), Path: fmt.Sprintf("models/m%d.json", i)}
				_, errs[i] = s.Promote(ctx, start, to, "race", fmt.Sprintf("worker-%d", i))
			})
		}
		close(ready)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			var ce *promotion.ConflictError
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("generation %d: writers %d and %d both won", start, winner, i)
			case err == nil:
				winner = i
			case !errors.As(err, &ce) || ce.Expected != start || ce.Current != start+1:
				t.Errorf("generation %d: writer %d: %v, want a promotion.ConflictError", start, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("generation %d: no writer won: %v", start, errs)
		}
		d, err := newStore(t, db, tbl, "failure").Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("m%d-%d", start, winner); d.Generation != start+1 || d.Champion.Key != want || d.By != fmt.Sprintf("worker-%d", winner) {
			t.Errorf("generation %d: item %+v, want the winner's %s", start, d.Entry, want)
		}
	}
}

// interleaving lets another writer write between a store's read and its
// conditional write: the race the read-time check cannot see.
type interleaving struct {
	*dynamodb.Client
	once   sync.Once
	before func()
}

func (i *interleaving) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	i.once.Do(i.before)
	return i.Client.PutItem(ctx, in, o...)
}

// TestPromoteLostRaceNeverOverwrites: a writer whose read saw generation
// 1 but whose write comes after another writer's is refused by the
// condition, and the other writer's decision stands.
func TestPromoteLostRaceNeverOverwrites(t *testing.T) {
	db, tbl := table(t)
	ctx := devstacktest.Ctx(t)
	if _, err := newStore(t, db, tbl, "failure").Promote(ctx, 0, v2, "first", "a"); err != nil {
		t.Fatal(err)
	}
	v3 := promotion.Model{Key: "failure_v3", Path: "models/v3.json"}
	var otherErr error
	slow := &interleaving{Client: db, before: func() {
		_, otherErr = newStore(t, db, tbl, "failure").Rollback(ctx, 1, "the other writer", "b")
	}}
	_, err := newStore(t, slow, tbl, "failure").Promote(ctx, 1, v3, "the slow writer", "c")
	if otherErr != nil {
		t.Fatal(otherErr)
	}
	var ce *promotion.ConflictError
	if !errors.As(err, &ce) || ce.Expected != 1 || ce.Current != 2 {
		t.Fatalf("slow writer: %v, want a promotion.ConflictError at generation 2", err)
	}
	d, err := newStore(t, db, tbl, "failure").Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 2 || d.Champion != v1 || d.Reason != "the other writer" {
		t.Errorf("decision %+v, want the other writer's rollback", d.Entry)
	}
}

// TestPromotionHistoryIsBounded: the item keeps the last HistoryLimit
// decisions, newest first, however many are made.
func TestPromotionHistoryIsBounded(t *testing.T) {
	db, tbl := table(t)
	ctx := devstacktest.Ctx(t)
	s := newStore(t, db, tbl, "failure")
	const n = dynamo.HistoryLimit + 5
	for g := int64(0); g < n; g++ {
		var err error
		if g%2 == 0 {
			_, err = s.Promote(ctx, g, v2, fmt.Sprintf("promotion %d", g+1), "t")
		} else {
			_, err = s.Rollback(ctx, g, fmt.Sprintf("rollback %d", g+1), "t")
		}
		if err != nil {
			t.Fatalf("decision %d: %v", g+1, err)
		}
	}
	d, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != n || len(d.History) != dynamo.HistoryLimit {
		t.Fatalf("generation %d with %d entries, want %d with %d", d.Generation, len(d.History), n, dynamo.HistoryLimit)
	}
	for i, e := range d.History {
		if want := int64(n - i); e.Generation != want {
			t.Errorf("history[%d] is generation %d, want %d", i, e.Generation, want)
		}
	}
}

// TestPromotionItemFromANewerLayoutIsRefused: a worker does not guess at
// a layout it does not know.
func TestPromotionItemFromANewerLayoutIsRefused(t *testing.T) {
	db, tbl := table(t)
	ctx := devstacktest.Ctx(t)
	s := newStore(t, db, tbl, "failure")
	if _, err := s.Promote(ctx, 0, v2, "first", "a"); err != nil {
		t.Fatal(err)
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tbl), ConsistentRead: aws.Bool(true), Key: map[string]types.AttributeValue{
		dynamo.AttrPipeline: &types.AttributeValueMemberS{Value: "factory"}, dynamo.AttrScorer: &types.AttributeValueMemberS{Value: "failure"}}})
	if err != nil || out.Item["schema"] == nil {
		t.Fatalf("raw item %v: %v", out, err)
	}
	it := out.Item
	it["schema"] = &types.AttributeValueMemberN{Value: "2"}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl), Item: it}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Current(ctx); err == nil {
		t.Fatal("read an item of schema 2")
	}
}

// applied records the decisions a follower applied, in order.
type applied struct {
	mu   sync.Mutex
	seen []promotion.Entry
}

func (a *applied) last() promotion.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		return promotion.Entry{Generation: -1}
	}
	return a.seen[len(a.seen)-1]
}

// follow runs a follower of a fresh store (a worker of its own) until
// the test ends; its first failFirst applies fail.
func follow(t *testing.T, db dynamo.API, tbl string, failFirst int) *applied {
	t.Helper()
	a := &applied{}
	fails := failFirst
	f, err := promotion.NewFollower(newStore(t, db, tbl, "failure"), promotion.FollowerConfig{
		Interval: 20 * time.Millisecond,
		OnChange: func(_ context.Context, d promotion.Decision) error {
			if fails > 0 {
				fails--
				return errors.New("model did not load")
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			a.seen = append(a.seen, d.Entry)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("follower: %v", err)
		}
	})
	return a
}

// waitFor waits, with a generous deadline, until every follower has
// applied generation g with champion m.
func waitFor(t *testing.T, g int64, m promotion.Model, fs ...*applied) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for i, f := range fs {
		for {
			e := f.last()
			if e.Generation == g && e.Champion == m {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("follower %d applied %+v, want generation %d with %s", i, e, g, m)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestFollowersConverge: two workers' followers apply the configured
// champion, then the promoted one, then the one a rollback restores,
// each exactly once and in order; a follower whose apply fails retries
// until it succeeds.
func TestFollowersConverge(t *testing.T) {
	db, tbl := table(t)
	ctx := devstacktest.Ctx(t)
	a, b := follow(t, db, tbl, 0), follow(t, db, tbl, 2)
	waitFor(t, 0, v1, a, b)

	s := newStore(t, db, tbl, "failure")
	if _, err := s.Promote(ctx, 0, v2, "evidence", "worker-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 1, v2, a, b)
	if _, err := s.Rollback(ctx, 1, "precision fell", "oncall"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2, v1, a, b)

	for i, f := range []*applied{a, b} {
		f.mu.Lock()
		var gens []int64
		for _, e := range f.seen {
			gens = append(gens, e.Generation)
		}
		f.mu.Unlock()
		if fmt.Sprint(gens) != "[0 1 2]" {
			t.Errorf("follower %d applied generations %v, want [0 1 2], each once", i, gens)
		}
	}
}
