package coordstate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Leader-lock defaults, named after the Java settings they mirror.
const (
	// DefaultLeaderLeaseDuration is how long a lock stays valid without a
	// heartbeat (LeaseManagementConfig.dynamoDbLockBasedLeaderLeaseDurationInMillis).
	DefaultLeaderLeaseDuration = 120 * time.Second
	// DefaultLeaderHeartbeat is how often the holder rewrites the lock, and
	// how long a non-holder keeps its "not leader" answer before reading
	// the lock again (LeaseManagementConfig.dynamoDbLockBasedLeaderHeartbeatPeriodInMillis).
	DefaultLeaderHeartbeat = 30 * time.Second
)

// Attribute names dynamodb-lock-client 1.4.0 writes.
const (
	attrOwnerName     = "ownerName"
	attrLeaseDuration = "leaseDuration" // S: milliseconds as a decimal string
	attrRVN           = "recordVersionNumber"
	attrIsReleased    = "isReleased"
	isReleasedValue   = "1"
)

// Conditions of dynamodb-lock-client 1.4.0 (AmazonDynamoDBLockClient).
const (
	condAbsent          = "attribute_not_exists(#pk)"
	condReleased        = "attribute_exists(#pk) AND #ir = :ir"
	condSameRVN         = "attribute_exists(#pk) AND #rvn = :rvn"
	condOwnerAndSameRVN = "attribute_exists(#pk) AND #on = :on AND #rvn = :rvn"
)

// LeaderConfig configures a Leader. Zero durations take the defaults.
type LeaderConfig struct {
	Owner         string        // this worker's id, written as ownerName
	LeaseDuration time.Duration // written as leaseDuration; must exceed Heartbeat
	Heartbeat     time.Duration
}

// Leader is the "Leader" lock item that elects Java KCL 3.x's leader,
// written as dynamodb-lock-client 1.4.0 writes it for
// DynamoDBLockBasedLeaderDecider: ownerName, leaseDuration (milliseconds,
// as a string), recordVersionNumber (a random UUID, new on every write),
// plus entityType LEADER in the single-table layout. Acquire is a PutItem
// if the item is absent; a heartbeat is an UpdateItem of leaseDuration and
// recordVersionNumber conditional on owner and the last version; release is
// a DeleteItem with the same condition.
//
// Takeover follows the lock client's rule, not Java KCL's behaviour: a lock
// whose recordVersionNumber this Leader has seen unchanged for the lock's
// own leaseDuration, measured on this process's monotonic clock, is taken
// with a PutItem conditional on that version. Java KCL's isLeader only asks
// the lock client to acquire when its getLock says the lock is absent or
// expired, and a lock just read from the table never is, so a Java fleet
// never takes over from a leader that died without releasing
// (awslabs/amazon-kinesis-client#1803). We do: a Go worker takes over the
// lock of a dead Java or Go leader after 120 s (plus up to one heartbeat
// period), and Java workers then see a live leader again.
//
// A Leader is safe for concurrent use.
type Leader struct {
	db      DynamoDBAPI
	table   string
	keyAttr string
	single  bool
	cfg     LeaderConfig
	bad     error // a layout without the lock's table

	mu        sync.Mutex
	held      bool
	rvn       string    // our last written version, kept after local expiry
	pending   string    // the version of a write whose outcome we did not learn
	lastWrite time.Time // start of our last successful write (monotonic)
	lastRead  time.Time // when we last read the lock while not holding it
	seenRVN   string    // a foreign version and when we first saw it
	seenAt    time.Time
}

// NewLeader returns the lock of layout l for cfg.Owner.
func NewLeader(db DynamoDBAPI, l Layout, cfg LeaderConfig) *Leader {
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaderLeaseDuration
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultLeaderHeartbeat
	}
	table, keyAttr := l.stateTable()
	return &Leader{db: db, table: table, keyAttr: keyAttr, single: l.Single, cfg: cfg, bad: l.check()}
}

// IsLeader reports whether this worker holds the lock, acquiring it when it
// is absent, released, or unchanged for its lease duration, and
// heartbeating it when held. It makes at most one DynamoDB call per
// Heartbeat period however often it is called: a holder answers from memory
// between heartbeats, and a non-holder's "no" stands for one Heartbeat
// period (as DynamoDBLockBasedLeaderDecider.isLeader caches false). A
// holder that has not written successfully for LeaseDuration no longer
// counts itself leader. Heartbeats happen only inside IsLeader, so a holder
// must ask at least once per LeaseDuration − Heartbeat (the consumer's
// leader loop asks every assignment round). On an error it answers false
// and keeps its state: a failed heartbeat is retried on the next call, a
// failed read one Heartbeat period later.
func (l *Leader) IsLeader(ctx context.Context) (bool, error) {
	if l.bad != nil {
		return false, l.bad
	}
	if l.cfg.Owner == "" {
		return false, errors.New("leader lock: no owner name")
	}
	if l.cfg.Heartbeat >= l.cfg.LeaseDuration {
		return false, fmt.Errorf("leader lock: heartbeat %v must be shorter than the lease duration %v", l.cfg.Heartbeat, l.cfg.LeaseDuration)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		since := time.Since(l.lastWrite)
		switch {
		case since < l.cfg.Heartbeat:
			return true, nil
		case since < l.cfg.LeaseDuration:
			return l.heartbeat(ctx)
		}
		l.held = false // our lease ran out: someone may have taken over
	}
	if !l.lastRead.IsZero() && time.Since(l.lastRead) < l.cfg.Heartbeat {
		return false, nil
	}
	return l.tryAcquire(ctx)
}

func (l *Leader) heartbeat(ctx context.Context) (bool, error) {
	newRVN := newUUID()
	start := time.Now()
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &l.table,
		Key:                 keyItem(l.keyAttr, LeaderKey),
		UpdateExpression:    aws.String("SET #ld = :ld, #rvn = :newRvn"),
		ConditionExpression: aws.String(condOwnerAndSameRVN),
		ExpressionAttributeNames: map[string]string{
			"#pk": l.keyAttr, "#ld": attrLeaseDuration, "#rvn": attrRVN, "#on": attrOwnerName,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":ld": sVal(l.leaseMillis()), ":newRvn": sVal(newRVN), ":rvn": sVal(l.rvn), ":on": sVal(l.cfg.Owner),
		},
	})
	if isConditionFailed(err) {
		l.held = false
		l.lastRead = time.Now()
		return false, nil
	}
	if err != nil {
		l.pending = newRVN
		return false, fmt.Errorf("leader lock: heartbeat %s in %s: %w", LeaderKey, l.table, err)
	}
	l.held, l.rvn, l.lastWrite, l.pending = true, newRVN, start, ""
	return true, nil
}

// lockItem is the part of a lock item that matters here.
type lockItem struct {
	owner    string
	duration time.Duration
	rvn      string
	released bool
}

func (l *Leader) read(ctx context.Context) (lockItem, bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &l.table,
		Key:            keyItem(l.keyAttr, LeaderKey),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return lockItem{}, false, fmt.Errorf("leader lock: get %s from %s: %w", LeaderKey, l.table, err)
	}
	if len(out.Item) == 0 {
		return lockItem{}, false, nil
	}
	it, err := decodeLock(l.table, out.Item)
	return it, err == nil, err
}

func decodeLock(table string, item map[string]types.AttributeValue) (lockItem, error) {
	var it lockItem
	fail := func(attr string, err error) (lockItem, error) {
		return lockItem{}, &DecodeError{Table: table, Key: LeaderKey, Attr: attr, Err: err}
	}
	var err error
	if it.owner, err = str(item, attrOwnerName); err != nil {
		return fail(attrOwnerName, err)
	}
	if it.rvn, err = str(item, attrRVN); err != nil {
		return fail(attrRVN, err)
	}
	ld, err := str(item, attrLeaseDuration)
	if err != nil {
		return fail(attrLeaseDuration, err)
	}
	ms, err := strconv.ParseInt(ld, 10, 64)
	if err != nil || ms < 0 || ms > int64(1<<62)/int64(time.Millisecond) {
		return fail(attrLeaseDuration, fmt.Errorf("%q is not a duration in milliseconds", ld))
	}
	it.duration = time.Duration(ms) * time.Millisecond
	_, it.released = item[attrIsReleased]
	return it, nil
}

func (l *Leader) tryAcquire(ctx context.Context) (bool, error) {
	cur, exists, err := l.read(ctx)
	l.lastRead = time.Now() // failed reads count too: the call budget holds
	if err != nil {
		return false, err
	}
	switch {
	case !exists:
		return l.put(ctx, condAbsent, nil)
	case cur.released:
		return l.put(ctx, condReleased, map[string]types.AttributeValue{":ir": sVal(isReleasedValue)})
	case cur.owner == l.cfg.Owner && cur.rvn != "" && (cur.rvn == l.rvn || cur.rvn == l.pending):
		// Still ours: from before our local lease ran out, or written by a
		// call whose answer we lost. A taker would need this very version,
		// so a heartbeat conditional on it resumes safely.
		l.rvn = cur.rvn
		return l.heartbeat(ctx)
	case cur.rvn != l.seenRVN:
		l.seenRVN, l.seenAt = cur.rvn, l.lastRead
		return false, nil
	case time.Since(l.seenAt) < cur.duration:
		return false, nil
	}
	return l.put(ctx, condSameRVN, map[string]types.AttributeValue{":rvn": sVal(cur.rvn)})
}

// put writes a whole new lock item under cond.
func (l *Leader) put(ctx context.Context, cond string, values map[string]types.AttributeValue) (bool, error) {
	newRVN := newUUID()
	item := map[string]types.AttributeValue{
		l.keyAttr:         sVal(LeaderKey),
		attrOwnerName:     sVal(l.cfg.Owner),
		attrLeaseDuration: sVal(l.leaseMillis()),
		attrRVN:           sVal(newRVN),
	}
	if l.single {
		item[AttrEntityType] = sVal(EntityLeader)
	}
	names := map[string]string{"#pk": l.keyAttr}
	if values != nil {
		if _, ok := values[":ir"]; ok {
			names["#ir"] = attrIsReleased
		}
		if _, ok := values[":rvn"]; ok {
			names["#rvn"] = attrRVN
		}
	}
	start := time.Now()
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &l.table,
		Item:                      item,
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		l.pending = newRVN
		return false, fmt.Errorf("leader lock: put %s into %s: %w", LeaderKey, l.table, err)
	}
	l.held, l.rvn, l.lastWrite, l.seenRVN, l.pending = true, newRVN, start, "", ""
	return true, nil
}

// Release gives the lock up if this worker holds it: a DeleteItem
// conditional on owner and version, as the lock client does with
// deleteLockOnRelease (KCL's default), so the next worker to ask acquires
// at once. A lock someone else has meanwhile taken is left alone.
func (l *Leader) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rvn == "" {
		return nil
	}
	rvn := l.rvn
	l.held, l.rvn, l.pending, l.lastRead = false, "", "", time.Time{}
	_, err := l.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                &l.table,
		Key:                      keyItem(l.keyAttr, LeaderKey),
		ConditionExpression:      aws.String(condOwnerAndSameRVN),
		ExpressionAttributeNames: map[string]string{"#pk": l.keyAttr, "#on": attrOwnerName, "#rvn": attrRVN},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":on": sVal(l.cfg.Owner), ":rvn": sVal(rvn),
		},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("leader lock: release %s in %s: %w", LeaderKey, l.table, err)
	}
	return nil
}

func (l *Leader) leaseMillis() string {
	return strconv.FormatInt(l.cfg.LeaseDuration.Milliseconds(), 10)
}

// newUUID returns a random (version 4) UUID, as the lock client's
// generateRecordVersionNumber does.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
