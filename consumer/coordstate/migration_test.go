package coordstate

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// TestMigrationCreateAndTransition: creation only when absent; a
// transition only from the version the item holds, pushing the old state
// onto the history; the history keeps the newest ten; the raw item has
// Java's shape.
func TestMigrationCreateAndTransition(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	for name, l := range layouts(t, env) {
		t.Run(name, func(t *testing.T) {
			if _, ok, err := GetMigration(ctx, env.DynamoDB, l); ok || err != nil {
				t.Fatalf("GetMigration on an empty table = %v, %v", ok, err)
			}
			t0 := time.UnixMilli(1767225600123)
			first := InitialMigration(ClientVersionUpgradeFrom2X, "w1", t0)
			if created, err := CreateMigration(ctx, env.DynamoDB, l, first); !created || err != nil {
				t.Fatalf("CreateMigration = %v, %v", created, err)
			}
			if created, err := CreateMigration(ctx, env.DynamoDB, l, InitialMigration(ClientVersion3X, "w2", t0)); created || err != nil {
				t.Fatalf("second CreateMigration = %v, %v; want false: the item exists", created, err)
			}
			got, ok, err := GetMigration(ctx, env.DynamoDB, l)
			if !ok || err != nil || !equalMigration(got, first) {
				t.Fatalf("GetMigration = %+v, %v, %v; want %+v", got, ok, err, first)
			}

			table, keyAttr := l.stateTable()
			raw := getRaw(t, env, table, keyAttr, MigrationKey)
			want := []string{keyAttr, "cv", "h", "mb", "mts"}
			if l.Single {
				want = append(want, "entityType")
			}
			slices.Sort(want)
			if names := slices.Sorted(maps.Keys(raw)); !slices.Equal(names, want) {
				t.Errorf("raw item attributes %v, want %v", names, want)
			}
			if mts, ok := raw["mts"].(*types.AttributeValueMemberN); !ok || mts.Value != "1767225600123" {
				t.Errorf("mts = %#v, want N epoch milliseconds", raw["mts"])
			}

			if ok, err := TransitionMigration(ctx, env.DynamoDB, l, ClientVersion2X, MigrationState{ClientVersion: ClientVersion3X, ModifiedBy: "w2"}); ok || err != nil {
				t.Fatalf("transition from the wrong version = %v, %v", ok, err)
			}
			to := MigrationState{ClientVersion: ClientVersion3XWithRollback, ModifiedBy: "w2", ModifiedAt: t0.Add(time.Minute)}
			if ok, err := TransitionMigration(ctx, env.DynamoDB, l, ClientVersionUpgradeFrom2X, to); !ok || err != nil {
				t.Fatalf("transition = %v, %v", ok, err)
			}
			got, _, err = GetMigration(ctx, env.DynamoDB, l)
			to.History = []MigrationState{{ClientVersion: ClientVersionUpgradeFrom2X, ModifiedBy: "w1", ModifiedAt: t0}, first.History[0]}
			if err != nil || !equalMigration(got, to) {
				t.Fatalf("after transition %+v, %v; want %+v", got, err, to)
			}

			// Flip back and forth until the history overflows.
			cur := ClientVersion3XWithRollback
			for i := range 12 {
				next := ClientVersion2X
				if cur == ClientVersion2X {
					next = ClientVersionUpgradeFrom2X
				} else if cur == ClientVersionUpgradeFrom2X {
					next = ClientVersion3XWithRollback
				}
				ok, err := TransitionMigration(ctx, env.DynamoDB, l, cur, MigrationState{ClientVersion: next, ModifiedBy: fmt.Sprintf("tool-%d", i), ModifiedAt: t0.Add(time.Duration(i+2) * time.Minute)})
				if !ok || err != nil {
					t.Fatalf("transition %d %s→%s = %v, %v", i, cur, next, ok, err)
				}
				cur = next
			}
			got, _, err = GetMigration(ctx, env.DynamoDB, l)
			if err != nil || got.ClientVersion != cur || got.ModifiedBy != "tool-11" || len(got.History) != MaxMigrationHistory {
				t.Fatalf("after 14 states: %+v, %v; want %s by tool-11 with %d history entries", got, err, cur, MaxMigrationHistory)
			}
			for i, h := range got.History { // newest first: tool-10, tool-9, …
				if want := fmt.Sprintf("tool-%d", 10-i); h.ModifiedBy != want {
					t.Errorf("history[%d] by %s, want %s", i, h.ModifiedBy, want)
				}
			}
		})
	}
}

// TestMigrationThreeTablesReadsLeaseTableToo: during Java 3.5's table
// migration the item moves to the lease table before the status is
// COMPLETE; readers then find it there.
func TestMigrationThreeTablesReadsLeaseTableToo(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	l := layouts(t, env)["three"]
	putRaw(t, env, l.LeaseTable, mustItem(t, fxMigrationSingle))
	got, ok, err := GetMigration(ctx, env.DynamoDB, l)
	if !ok || err != nil || !equalMigration(got, wantMigrationFixture) {
		t.Fatalf("GetMigration = %+v, %v, %v", got, ok, err)
	}
}

func TestMigrationFromItemStrict(t *testing.T) {
	for js, attr := range map[string]string{
		`{"mb":{"S":"w"},"mts":{"N":"1"}}`:                                                                                                    "cv",
		`{"cv":{"S":"CLIENT_VERSION_4X"},"mb":{"S":"w"},"mts":{"N":"1"}}`:                                                                     "cv",
		`{"cv":{"S":"CLIENT_VERSION_3X"},"mts":{"N":"1"}}`:                                                                                    "mb",
		`{"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"w"}}`:                                                                                     "mts",
		`{"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"w"},"mts":{"S":"1"}}`:                                                                     "mts",
		`{"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"w"},"mts":{"N":"1"},"h":{"M":{}}}`:                                                        "h",
		`{"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"w"},"mts":{"N":"1"},"h":{"L":[{"S":"x"}]}}`:                                               "h[0]",
		`{"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"w"},"mts":{"N":"1"},"h":{"L":[{"M":{"cv":{"S":"CLIENT_VERSION_INIT"},"mb":{"S":"w"}}}]}}`: "h[0].mts",
		`{"cv":{"S":"CLIENT_VERSION_3X"},"mb":{"S":"w"},"mts":{"N":"1"},"entityType":{"S":"LEADER"}}`:                                         "entityType",
	} {
		_, err := MigrationFromItem("tbl", mustItem(t, js))
		var de *DecodeError
		if !errors.As(err, &de) || de.Attr != attr || de.Table != "tbl" || de.Key != MigrationKey {
			t.Errorf("%s: err = %v, want a DecodeError on %s", js, err, attr)
		}
	}
	if _, err := CreateMigration(t.Context(), nil, SingleTable("t"), MigrationState{ClientVersion: "CLIENT_VERSION_4X", ModifiedBy: "w"}); err == nil {
		t.Error("CreateMigration accepted an unknown client version")
	}
}
