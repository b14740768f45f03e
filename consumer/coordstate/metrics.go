package coordstate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Worker-metrics defaults, named after the Java settings they mirror.
const (
	// DefaultMetricsReportInterval is how often a worker writes its item
	// (WorkerUtilizationAwareAssignmentConfig.workerMetricsReporterFreqInMillis).
	DefaultMetricsReportInterval = 30 * time.Second
	// DefaultMetricsExpiry is how old an item may be for its worker to count
	// as alive: 2 × the report interval
	// (MigrationAwareLAMDataManager.DEFAULT_NO_OF_SKIP_STAT_FOR_DEAD_WORKER_THRESHOLD).
	DefaultMetricsExpiry = 2 * DefaultMetricsReportInterval
	// DefaultStaleMetricsCleanup is the age after which the leader deletes an
	// item (WorkerUtilizationAwareAssignmentConfig.staleWorkerMetricsEntryCleanupDuration).
	DefaultStaleMetricsCleanup = 24 * time.Hour
	// DefaultPersistedMetricValues is how many values per metric an item
	// keeps, newest last (noOfPersistedMetricsPerWorkerMetrics).
	DefaultPersistedMetricValues = 10
	// DefaultMaxUtilization is the operating range a worker reports for each
	// metric: [maxUtilization] (WorkerMetric operating range default).
	DefaultMaxUtilization = 100
)

// SupportCode is the support code Java 3.5 workers report in "sup":
// Features.SINGLE_TABLE_MIGRATION's ordinal (WorkerMetricStats.SUPPORT_CODE).
const SupportCode = 1

// Metric short names, the keys of sts and opr (WorkerMetricType).
const (
	MetricCPU        = "C"
	MetricMemory     = "M"
	MetricNetworkIn  = "NI"
	MetricNetworkOut = "NO"
	MetricThroughput = "T"
)

// FailedMetricValue is the value a worker appends when it could not read a
// metric; the last value being this marks the worker as failing.
const FailedMetricValue = -1

// defaultMetricKey is what WorkerMetricStats.isUsingDefaultWorkerMetric
// compares sts keys with: WorkerMetricType.THROUGHPUT.name(), not its short
// name "T" (which the leader itself puts into its in-memory copy).
const defaultMetricKey = "THROUGHPUT"

// Attribute names of a WorkerMetricStats item.
const (
	attrLastUpdate     = "lut"
	attrStats          = "sts"
	attrOperatingRange = "opr"
	attrSupportCode    = "sup"
	attrSupportUpdate  = "slu"
	attrProperties     = "properties"
)

// WorkerMetricStats is one worker's item: key wid (three tables) or leaseKey
// (single table), lut (epoch seconds), sts (metric → last values), opr
// (metric → [maxUtilization], integers), and from 3.5 sup, slu and
// entityType. Stats and OperatingRange are nil when the item lacks them.
type WorkerMetricStats struct {
	WorkerID       string
	LastUpdate     time.Time // whole seconds; zero when lut is absent
	Stats          map[string][]float64
	OperatingRange map[string][]float64
	// SupportCode and SupportUpdate are sup and slu: 0 and zero when the
	// writer predates 3.5. Put writes them in the single-table layout only.
	SupportCode   int
	SupportUpdate time.Time
}

// Active reports whether the worker counts as alive at now: lut no older
// than DefaultMetricsExpiry (WorkerMetricStats.isExpired).
func (s WorkerMetricStats) Active(now time.Time) bool {
	return !s.LastUpdate.IsZero() && now.Sub(s.LastUpdate) <= DefaultMetricsExpiry
}

// Stale reports whether the leader should delete the item at now: lut
// absent or older than DefaultStaleMetricsCleanup (WorkerMetricStats.isStale).
func (s WorkerMetricStats) Stale(now time.Time) bool {
	return s.LastUpdate.IsZero() || now.Sub(s.LastUpdate) > DefaultStaleMetricsCleanup
}

// DefaultMetric reports whether the worker reports no explicit metric, so
// that balancing falls back to throughput: sts and opr both empty, or an sts
// key "THROUGHPUT" (WorkerMetricStats.isUsingDefaultWorkerMetric).
func (s WorkerMetricStats) DefaultMetric() bool {
	if len(s.Stats) == 0 && len(s.OperatingRange) == 0 {
		return true
	}
	_, ok := s.Stats[defaultMetricKey]
	return ok
}

// Valid reports whether the leader may use the item
// (WorkerMetricStats.isValidWorkerMetric): lut present, and either the
// default metric, or every sts key has an opr entry and every opr entry
// starts with a non-zero maximum.
func (s WorkerMetricStats) Valid() bool {
	if s.LastUpdate.IsZero() {
		return false
	}
	if s.DefaultMetric() {
		return true
	}
	if s.Stats == nil || s.OperatingRange == nil {
		return false
	}
	for k := range s.Stats {
		if _, ok := s.OperatingRange[k]; !ok {
			return false
		}
	}
	for _, r := range s.OperatingRange {
		if len(r) == 0 || r[0] == 0 {
			return false
		}
	}
	return true
}

// Failing reports whether some metric's newest value is FailedMetricValue;
// the leader gives such a worker no leases
// (WorkerMetricStats.isAnyWorkerMetricFailing).
func (s WorkerMetricStats) Failing() bool {
	if s.DefaultMetric() {
		return false
	}
	for _, v := range s.Stats {
		if len(v) > 0 && v[len(v)-1] == FailedMetricValue {
			return true
		}
	}
	return false
}

// Metrics reads and writes the WorkerMetricStats items of one Layout.
// It is safe for concurrent use.
type Metrics struct {
	db     DynamoDBAPI
	layout Layout
}

// NewMetrics returns the store for l.
func NewMetrics(db DynamoDBAPI, l Layout) *Metrics {
	return &Metrics{db: db, layout: l}
}

// Put writes s as Java's reporter does: an UpdateItem that SETs every
// attribute, with no condition (Enhanced client, ignoreNulls=true), so it
// creates the item or overwrites the worker's previous values. In the
// single-table layout it also writes sup, slu and entityType, as 3.5 does;
// in the three-table layout it writes the 3.0–3.4 shape, so that a 3.5
// leader does not count this worker as ready to move to the single table,
// which it does not do. Like Java it refuses an item whose lut is older
// than DefaultMetricsExpiry or that has a metric without values; it also
// refuses an opr that is not an integer, which Java reads as a Long.
func (m *Metrics) Put(ctx context.Context, s WorkerMetricStats) error {
	if err := m.layout.check(); err != nil {
		return err
	}
	table, keyAttr := m.layout.metricsTable()
	if s.WorkerID == "" {
		return errors.New("put worker metrics: no worker id")
	}
	if s.LastUpdate.IsZero() {
		return fmt.Errorf("put worker metrics of %s: no last update time", s.WorkerID)
	}
	if age := time.Since(s.LastUpdate); age >= DefaultMetricsExpiry {
		return fmt.Errorf("put worker metrics of %s: last update %v is %v old, Java would not write it (limit %v)", s.WorkerID, s.LastUpdate, age, DefaultMetricsExpiry)
	}
	sts, err := encodeMetricMap(s.Stats, false)
	if err != nil {
		return fmt.Errorf("put worker metrics of %s: sts%w", s.WorkerID, err)
	}
	opr, err := encodeMetricMap(s.OperatingRange, true)
	if err != nil {
		return fmt.Errorf("put worker metrics of %s: opr%w", s.WorkerID, err)
	}
	lut := nInt(s.LastUpdate.Unix())
	names := map[string]string{"#lut": attrLastUpdate, "#sts": attrStats, "#opr": attrOperatingRange}
	values := map[string]types.AttributeValue{":lut": lut, ":sts": sts, ":opr": opr}
	expr := "SET #lut = :lut, #sts = :sts, #opr = :opr"
	if m.layout.Single {
		names["#sup"], names["#slu"], names["#et"] = attrSupportCode, attrSupportUpdate, AttrEntityType
		values[":sup"], values[":slu"], values[":et"] = nInt(SupportCode), lut, sVal(EntityWorkerMetrics)
		expr += ", #sup = :sup, #slu = :slu, #et = :et"
	}
	_, err = m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &table,
		Key:                       keyItem(keyAttr, s.WorkerID),
		UpdateExpression:          &expr,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if err != nil {
		return fmt.Errorf("put worker metrics of %s into %s: %w", s.WorkerID, table, err)
	}
	return nil
}

func encodeMetricMap(m map[string][]float64, integral bool) (types.AttributeValue, error) {
	out := make(map[string]types.AttributeValue, len(m))
	for k, vals := range m {
		if len(vals) == 0 {
			return nil, fmt.Errorf("[%q] has no values", k)
		}
		l := make([]types.AttributeValue, len(vals))
		for i, v := range vals {
			if integral {
				if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
					return nil, fmt.Errorf("[%q][%d] = %v is not an integer", k, i, v)
				}
				l[i] = nInt(int64(v))
				continue
			}
			s, err := formatFloat(v)
			if err != nil {
				return nil, fmt.Errorf("[%q][%d]: %w", k, i, err)
			}
			l[i] = &types.AttributeValueMemberN{Value: s}
		}
		out[k] = &types.AttributeValueMemberL{Value: l}
	}
	return &types.AttributeValueMemberM{Value: out}, nil
}

// List reads every WorkerMetricStats item, as the leader does each
// assignment round: a Scan of the metrics table (three tables), or of the
// lease table filtered on entityType = WORKER_METRIC_STATS (single table;
// DynamoDB still reads, and bills, every lease). Items that do not decode
// are left out and reported together in the error (each a *DecodeError
// naming table, key and attribute), alongside the items that did decode,
// so that one bad item does not stop assignment; any other error returns
// no items.
func (m *Metrics) List(ctx context.Context) ([]WorkerMetricStats, error) {
	if err := m.layout.check(); err != nil {
		return nil, err
	}
	table, _ := m.layout.metricsTable()
	in := &dynamodb.ScanInput{TableName: &table}
	if m.layout.Single {
		in.FilterExpression = aws.String("#et = :et")
		in.ExpressionAttributeNames = map[string]string{"#et": AttrEntityType}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":et": sVal(EntityWorkerMetrics)}
	}
	var out []WorkerMetricStats
	var bad []error
	for {
		page, err := m.db.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("scan worker metrics in %s: %w", table, err)
		}
		for _, item := range page.Items {
			s, err := MetricsFromItem(m.layout, item)
			if err != nil {
				bad = append(bad, err)
				continue
			}
			out = append(out, s)
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, errors.Join(bad...)
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// DeleteStale deletes s's item if its lut is still the one s was read with
// and the item exists, Java's condition
// "#key = :value AND attribute_exists (wid|leaseKey)" with #key = lut
// (WorkerMetricStatsDAODelegate.deleteMetrics). When the worker has written
// since, the item stays and DeleteStale returns nil: the worker came back.
func (m *Metrics) DeleteStale(ctx context.Context, s WorkerMetricStats) error {
	if err := m.layout.check(); err != nil {
		return err
	}
	if s.WorkerID == "" || s.LastUpdate.IsZero() {
		return fmt.Errorf("delete worker metrics %q: worker id and last update time are required", s.WorkerID)
	}
	table, keyAttr := m.layout.metricsTable()
	_, err := m.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &table,
		Key:                       keyItem(keyAttr, s.WorkerID),
		ConditionExpression:       aws.String(fmt.Sprintf("#key = :value AND attribute_exists (%s)", keyAttr)),
		ExpressionAttributeNames:  map[string]string{"#key": attrLastUpdate},
		ExpressionAttributeValues: map[string]types.AttributeValue{":value": nInt(s.LastUpdate.Unix())},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("delete worker metrics of %s from %s: %w", s.WorkerID, table, err)
	}
	return nil
}

// MetricsFromItem decodes a WorkerMetricStats item of layout l, so that a
// caller that scans the lease table anyway (the leader, in the single-table
// layout) can split one scan instead of paying for two. It accepts the
// shapes of 3.0–3.4 (no sup, slu, entityType) and 3.5, and DynamoDB's
// canonical number spellings; anything Java's mapper would reject is a
// *DecodeError.
func MetricsFromItem(l Layout, item map[string]types.AttributeValue) (WorkerMetricStats, error) {
	table, keyAttr := l.metricsTable()
	var s WorkerMetricStats
	id, err := str(item, keyAttr)
	if err != nil {
		return s, &DecodeError{Table: table, Key: "?", Attr: keyAttr, Err: err}
	}
	s.WorkerID = id
	fail := func(attr string, err error) (WorkerMetricStats, error) {
		return WorkerMetricStats{}, &DecodeError{Table: table, Key: id, Attr: attr, Err: err}
	}
	if et, ok, err := optStr(item, AttrEntityType); err != nil {
		return fail(AttrEntityType, err)
	} else if ok && l.Single && et != EntityWorkerMetrics {
		return fail(AttrEntityType, fmt.Errorf("%q is not %s", et, EntityWorkerMetrics))
	}
	if v, ok, err := optInteger(item, attrLastUpdate); err != nil {
		return fail(attrLastUpdate, err)
	} else if ok {
		s.LastUpdate = time.Unix(v, 0)
	}
	var sub string
	if s.Stats, sub, err = decodeMetricMap(item, attrStats, false); err != nil {
		return fail(attrStats+sub, err)
	}
	if s.OperatingRange, sub, err = decodeMetricMap(item, attrOperatingRange, true); err != nil {
		return fail(attrOperatingRange+sub, err)
	}
	if v, ok, err := optInteger(item, attrSupportCode); err != nil {
		return fail(attrSupportCode, err)
	} else if ok {
		if v < math.MinInt32 || v > math.MaxInt32 {
			return fail(attrSupportCode, fmt.Errorf("%d does not fit a Java Integer", v))
		}
		s.SupportCode = int(v)
	}
	if v, ok, err := optInteger(item, attrSupportUpdate); err != nil {
		return fail(attrSupportUpdate, err)
	} else if ok {
		s.SupportUpdate = time.Unix(v, 0)
	}
	if av, ok := item[attrProperties]; ok {
		p, isMap := av.(*types.AttributeValueMemberM)
		if !isMap {
			return fail(attrProperties, wrongType("M", av))
		}
		for _, k := range slices.Sorted(maps.Keys(p.Value)) {
			if _, isStr := p.Value[k].(*types.AttributeValueMemberS); !isStr {
				return fail(fmt.Sprintf("%s[%q]", attrProperties, k), wrongType("S", p.Value[k]))
			}
		}
	}
	return s, nil
}

// decodeMetricMap decodes an M of L of N; nil when absent. On error, the
// string is the path of the bad part below attr, e.g. ["C"][2].
func decodeMetricMap(item map[string]types.AttributeValue, attr string, integral bool) (map[string][]float64, string, error) {
	av, ok := item[attr]
	if !ok {
		return nil, "", nil
	}
	m, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return nil, "", wrongType("M", av)
	}
	out := make(map[string][]float64, len(m.Value))
	for _, k := range slices.Sorted(maps.Keys(m.Value)) {
		l, ok := m.Value[k].(*types.AttributeValueMemberL)
		if !ok {
			return nil, fmt.Sprintf("[%q]", k), wrongType("L", m.Value[k])
		}
		vals := make([]float64, len(l.Value))
		for i, e := range l.Value {
			var err error
			if integral {
				var v int64
				v, err = integer(e)
				vals[i] = float64(v)
			} else {
				vals[i], err = float(e)
			}
			if err != nil {
				return nil, fmt.Sprintf("[%q][%d]", k, i), err
			}
		}
		out[k] = vals
	}
	return out, "", nil
}
