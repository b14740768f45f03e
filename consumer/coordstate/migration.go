package coordstate

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Client versions, the values of cv (ClientVersion.java).
const (
	ClientVersionInit           = "CLIENT_VERSION_INIT"
	ClientVersionUpgradeFrom2X  = "CLIENT_VERSION_UPGRADE_FROM_2X"
	ClientVersion2X             = "CLIENT_VERSION_2X"
	ClientVersion3XWithRollback = "CLIENT_VERSION_3X_WITH_ROLLBACK"
	ClientVersion3X             = "CLIENT_VERSION_3X"
)

// MaxMigrationHistory is how many previous states the item keeps
// (MigrationState.MAX_HISTORY_ENTRIES).
const MaxMigrationHistory = 10

// Attribute names of the Migration3.0 item.
const (
	attrClientVersion = "cv"
	attrModifiedBy    = "mb"
	attrModifiedAt    = "mts" // epoch milliseconds
	attrHistory       = "h"
)

func knownClientVersion(cv string) bool {
	switch cv {
	case ClientVersionInit, ClientVersionUpgradeFrom2X, ClientVersion2X, ClientVersion3XWithRollback, ClientVersion3X:
		return true
	}
	return false
}

// MigrationState is the "Migration3.0" item: the client version the fleet
// runs (cv), who set it (mb: a worker id or KclMigrationTool-rollback /
// -rollforward) and when (mts, epoch ms), and the previous states (h),
// newest first, at most MaxMigrationHistory. History entries have no
// history of their own.
type MigrationState struct {
	ClientVersion string
	ModifiedBy    string
	ModifiedAt    time.Time
	History       []MigrationState
}

// InitialMigration is the state Java writes when it first creates the item
// for version cv: MigrationState(workerId).update(cv, workerId), which
// records the CLIENT_VERSION_INIT it started from in the history.
func InitialMigration(cv, by string, now time.Time) MigrationState {
	return MigrationState{ClientVersion: cv, ModifiedBy: by, ModifiedAt: now,
		History: []MigrationState{{ClientVersion: ClientVersionInit, ModifiedBy: by, ModifiedAt: now}}}
}

// GetMigration reads the Migration3.0 item with a consistent GetItem; ok is
// false when there is none. In the three-table layout it reads the
// coordinator table first and, when the item is not there, the lease table,
// which is Java 3.5's read rule until its table migration is COMPLETE (the
// item moves to the lease table during that migration).
func GetMigration(ctx context.Context, db DynamoDBAPI, l Layout) (MigrationState, bool, error) {
	if err := l.check(); err != nil {
		return MigrationState{}, false, err
	}
	table, keyAttr := l.stateTable()
	s, ok, err := getMigration(ctx, db, table, keyAttr)
	if err != nil || ok || l.Single {
		return s, ok, err
	}
	return getMigration(ctx, db, l.LeaseTable, attrLeaseKey)
}

func getMigration(ctx context.Context, db DynamoDBAPI, table, keyAttr string) (MigrationState, bool, error) {
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &table,
		Key:            keyItem(keyAttr, MigrationKey),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return MigrationState{}, false, fmt.Errorf("get %s from %s: %w", MigrationKey, table, err)
	}
	if len(out.Item) == 0 {
		return MigrationState{}, false, nil
	}
	s, err := MigrationFromItem(table, out.Item)
	return s, err == nil, err
}

// MigrationFromItem decodes a Migration3.0 item read from table, as
// MigrationState.deserialize does: cv must name a known client version, mb
// a string, mts an integer; h, when present, a list of maps of the same
// three. entityType, when present, must be CLIENT_VERSION_MIGRATION.
func MigrationFromItem(table string, item map[string]types.AttributeValue) (MigrationState, error) {
	fail := func(attr string, err error) (MigrationState, error) {
		return MigrationState{}, &DecodeError{Table: table, Key: MigrationKey, Attr: attr, Err: err}
	}
	if et, ok, err := optStr(item, AttrEntityType); err != nil {
		return fail(AttrEntityType, err)
	} else if ok && et != EntityMigration {
		return fail(AttrEntityType, fmt.Errorf("%q is not %s", et, EntityMigration))
	}
	s, attr, err := decodeMigrationEntry(item)
	if err != nil {
		return fail(attr, err)
	}
	av, ok := item[attrHistory]
	if !ok {
		return s, nil
	}
	h, ok := av.(*types.AttributeValueMemberL)
	if !ok {
		return fail(attrHistory, wrongType("L", av))
	}
	s.History = make([]MigrationState, 0, len(h.Value))
	for i, e := range h.Value {
		m, ok := e.(*types.AttributeValueMemberM)
		if !ok {
			return fail(fmt.Sprintf("%s[%d]", attrHistory, i), wrongType("M", e))
		}
		entry, attr, err := decodeMigrationEntry(m.Value)
		if err != nil {
			return fail(fmt.Sprintf("%s[%d].%s", attrHistory, i, attr), err)
		}
		s.History = append(s.History, entry)
	}
	return s, nil
}

// decodeMigrationEntry decodes cv, mb and mts; on error it names the
// attribute.
func decodeMigrationEntry(item map[string]types.AttributeValue) (MigrationState, string, error) {
	var s MigrationState
	var err error
	if s.ClientVersion, err = str(item, attrClientVersion); err != nil {
		return s, attrClientVersion, err
	}
	if !knownClientVersion(s.ClientVersion) {
		return s, attrClientVersion, fmt.Errorf("%q is not a client version", s.ClientVersion)
	}
	if s.ModifiedBy, err = str(item, attrModifiedBy); err != nil {
		return s, attrModifiedBy, err
	}
	av, ok := item[attrModifiedAt]
	if !ok {
		return s, attrModifiedAt, errMissing
	}
	ms, err := integer(av)
	if err != nil {
		return s, attrModifiedAt, err
	}
	s.ModifiedAt = time.UnixMilli(ms)
	return s, "", nil
}

func migrationEntry(s MigrationState) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrClientVersion: sVal(s.ClientVersion),
		attrModifiedBy:    sVal(s.ModifiedBy),
		attrModifiedAt:    nInt(s.ModifiedAt.UnixMilli()),
	}
}

func historyValue(h []MigrationState) *types.AttributeValueMemberL {
	l := make([]types.AttributeValue, len(h))
	for i, e := range h {
		l[i] = &types.AttributeValueMemberM{Value: migrationEntry(e)}
	}
	return &types.AttributeValueMemberL{Value: l}
}

func checkMigration(s MigrationState) error {
	if !knownClientVersion(s.ClientVersion) {
		return fmt.Errorf("%q is not a client version", s.ClientVersion)
	}
	if s.ModifiedBy == "" {
		return fmt.Errorf("migration state %s has no modifier", s.ClientVersion)
	}
	for _, h := range s.History {
		if !knownClientVersion(h.ClientVersion) {
			return fmt.Errorf("history: %q is not a client version", h.ClientVersion)
		}
	}
	return nil
}

// CreateMigration writes s as the Migration3.0 item unless one exists
// (PutItem, key not exists, as createCoordinatorStateIfNotExists); created
// is false when it did. h is written only when s has history, and
// entityType only in the single-table layout. A zero ModifiedAt means now.
// Java's first item carries CLIENT_VERSION_INIT in its history: see
// InitialMigration.
func CreateMigration(ctx context.Context, db DynamoDBAPI, l Layout, s MigrationState) (created bool, err error) {
	if err := l.check(); err != nil {
		return false, err
	}
	if s.ModifiedAt.IsZero() {
		s.ModifiedAt = time.Now()
	}
	if err := checkMigration(s); err != nil {
		return false, fmt.Errorf("create %s: %w", MigrationKey, err)
	}
	if len(s.History) > MaxMigrationHistory {
		s.History = s.History[:MaxMigrationHistory]
	}
	table, keyAttr := l.stateTable()
	item := migrationEntry(s)
	item[keyAttr] = sVal(MigrationKey)
	if len(s.History) > 0 {
		item[attrHistory] = historyValue(s.History)
	}
	if l.Single {
		item[AttrEntityType] = sVal(EntityMigration)
	}
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                &table,
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": keyAttr},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s in %s: %w", MigrationKey, table, err)
	}
	return true, nil
}

// TransitionMigration moves the item from client version from to
// to.ClientVersion, as MigrationState.update plus
// updateCoordinatorStateWithExpectation do: it reads the item, pushes the
// current cv, mb and mts onto the front of the history (keeping
// MaxMigrationHistory; to.History is ignored), and PUTs cv, mb, mts and h
// with the condition key = Migration3.0 AND cv = from. ok is false when the
// item is absent or its cv is not from. A zero to.ModifiedAt means now.
func TransitionMigration(ctx context.Context, db DynamoDBAPI, l Layout, from string, to MigrationState) (ok bool, err error) {
	if err := l.check(); err != nil {
		return false, err
	}
	if to.ModifiedAt.IsZero() {
		to.ModifiedAt = time.Now()
	}
	to.History = nil
	if err := checkMigration(to); err != nil {
		return false, fmt.Errorf("transition %s: %w", MigrationKey, err)
	}
	table, keyAttr := l.stateTable()
	cur, exists, err := getMigration(ctx, db, table, keyAttr)
	if err != nil || !exists || cur.ClientVersion != from {
		return false, err
	}
	h := append([]MigrationState{{ClientVersion: cur.ClientVersion, ModifiedBy: cur.ModifiedBy, ModifiedAt: cur.ModifiedAt}}, cur.History...)
	if len(h) > MaxMigrationHistory {
		h = h[:MaxMigrationHistory]
	}
	_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &table,
		Key:                 keyItem(keyAttr, MigrationKey),
		UpdateExpression:    aws.String("SET #cv = :cv, #mb = :mb, #mts = :mts, #h = :h"),
		ConditionExpression: aws.String("#k = :k AND #cv = :from"),
		ExpressionAttributeNames: map[string]string{
			"#k": keyAttr, "#cv": attrClientVersion, "#mb": attrModifiedBy, "#mts": attrModifiedAt, "#h": attrHistory,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":k": sVal(MigrationKey), ":from": sVal(from),
			":cv": sVal(to.ClientVersion), ":mb": sVal(to.ModifiedBy), ":mts": nInt(to.ModifiedAt.UnixMilli()), ":h": historyValue(h),
		},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("transition %s in %s from %s to %s: %w", MigrationKey, table, from, to.ClientVersion, err)
	}
	return true, nil
}
