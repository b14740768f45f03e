package windowing_test

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/streamscore/streamscore/windowing"
)

func printRows(rec arrow.RecordBatch) {
	if rec == nil {
		return
	}
	defer rec.Release()
	for i := 0; i < int(rec.NumRows()); i++ {
		start := time.Unix(0, int64(rec.Column(1).(*array.Timestamp).Value(i))).UTC()
		end := time.Unix(0, int64(rec.Column(2).(*array.Timestamp).Value(i))).UTC()
		fmt.Printf("%s [%s, %s)", rec.Column(0).(*array.String).Value(i), start.Format("01-02 15:04"), end.Format("01-02 15:04"))
		for c := 3; c < int(rec.NumCols())-3; c++ {
			col := rec.Column(c).(*array.Float64)
			if col.IsNull(i) {
				fmt.Printf(" %s=null", rec.ColumnName(c))
			} else {
				fmt.Printf(" %s=%.4g", rec.ColumnName(c), col.Value(i))
			}
		}
		fmt.Println()
	}
}

// Factory sensors: vibration statistics over 5 minutes, sliding by 1
// minute, per machine.
func Example_sensors() {
	schema := windowing.Schema{
		Name: "sensor", Entity: "machine_id", Time: "ts", TimeFormat: windowing.TimeRFC3339,
		Fields: []windowing.FieldSpec{
			{Name: "temperature_c", Type: windowing.TypeFloat64},
			{Name: "vibration_rms", Type: windowing.TypeFloat64},
		},
	}
	spec := windowing.WindowSpec{
		Name: "machine_5m", Stream: "factory-sensors", Kind: windowing.Hopping,
		Size: 5 * time.Minute, Slide: time.Minute, OutOfOrderness: 10 * time.Second,
		IdleTimeout: 30 * time.Second, AllowedLateness: 2 * time.Minute, MaxKeys: 100_000,
		Features: []windowing.FeatureSpec{
			{Name: "vibration_mean", Agg: windowing.AggMean, Field: "vibration_rms"},
			{Name: "vibration_max", Agg: windowing.AggMax, Field: "vibration_rms"},
			{Name: "vibration_std", Agg: windowing.AggStddev, Field: "vibration_rms"},
			{Name: "vibration_delta", Agg: windowing.AggDelta, Field: "vibration_rms"},
			{Name: "temperature_missing", Agg: windowing.AggMissingRatio, Field: "temperature_c"},
		},
	}
	dec, _ := windowing.NewDecoder(schema, nil)
	defer dec.Release()
	op, err := windowing.NewOperator(spec, schema, windowing.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer op.Release()
	for i, r := range []string{
		`{"machine_id":"press-017","ts":"2026-11-24T10:00:10Z","temperature_c":71.2,"vibration_rms":0.42}`,
		`{"machine_id":"press-017","ts":"2026-11-24T10:01:10Z","vibration_rms":0.40}`,
		`{"machine_id":"press-017","ts":"2026-11-24T10:02:10Z","temperature_c":71.9,"vibration_rms":0.51}`,
		`{"machine_id":"press-017","ts":"2026-11-24T10:01:20Z","temperature_c":71.5,"vibration_rms":"high"}`,
		`{"machine_id":"press-017","ts":"2026-11-24T10:06:30Z","temperature_c":72.4,"vibration_rms":0.90}`,
	} {
		if err := dec.Append([]byte(r), uint64(i)); err != nil {
			fmt.Println("dead letter:", err)
		}
	}
	rec := dec.NewRecordBatch()
	defer rec.Release()
	out, _ := op.Process(rec, time.Date(2026, 11, 24, 10, 6, 31, 0, time.UTC))
	printRows(out.Features)
	// Output:
	// dead letter: record at offset 3: field "vibration_rms": expected float64, got a string (byte 91)
	// press-017 [11-24 09:56, 11-24 10:01) vibration_mean=0.42 vibration_max=0.42 vibration_std=null vibration_delta=0 temperature_missing=0
	// press-017 [11-24 09:57, 11-24 10:02) vibration_mean=0.41 vibration_max=0.42 vibration_std=0.01414 vibration_delta=-0.02 temperature_missing=0.5
	// press-017 [11-24 09:58, 11-24 10:03) vibration_mean=0.4433 vibration_max=0.51 vibration_std=0.05859 vibration_delta=0.09 temperature_missing=0.3333
	// press-017 [11-24 09:59, 11-24 10:04) vibration_mean=0.4433 vibration_max=0.51 vibration_std=0.05859 vibration_delta=0.09 temperature_missing=0.3333
	// press-017 [11-24 10:00, 11-24 10:05) vibration_mean=0.4433 vibration_max=0.51 vibration_std=0.05859 vibration_delta=0.09 temperature_missing=0.3333
	// press-017 [11-24 10:01, 11-24 10:06) vibration_mean=0.455 vibration_max=0.51 vibration_std=0.07778 vibration_delta=0.11 temperature_missing=0.5
}

// App events: logins, purchases, spend and support tickets per user per day.
func Example_appEvents() {
	schema := windowing.Schema{
		Name: "app", Entity: "user_id", Time: "ts", TimeFormat: windowing.TimeEpochMS,
		Fields: []windowing.FieldSpec{
			{Name: "event_type", Type: windowing.TypeString},
			{Name: "session_id", Type: windowing.TypeString},
			{Name: "amount", Type: windowing.TypeFloat64},
		},
	}
	spec := windowing.WindowSpec{
		Name: "user_day", Stream: "app-events", Kind: windowing.Tumbling, Size: 24 * time.Hour,
		OutOfOrderness: time.Minute, IdleTimeout: 5 * time.Minute, AllowedLateness: time.Hour,
		Late: windowing.LateDeadLetter, MaxKeys: 1_000_000,
		Features: []windowing.FeatureSpec{
			{Name: "logins", Agg: windowing.AggCountIf, Field: "event_type", Equals: "login"},
			{Name: "purchases", Agg: windowing.AggCountIf, Field: "event_type", Equals: "purchase"},
			{Name: "spend", Agg: windowing.AggSum, Field: "amount"},
			{Name: "support_tickets", Agg: windowing.AggCountIf, Field: "event_type", Equals: "support_ticket"},
			{Name: "sessions", Agg: windowing.AggDistinctCount, Field: "session_id"},
			{Name: "events", Agg: windowing.AggCount},
		},
	}
	dec, _ := windowing.NewDecoder(schema, nil)
	defer dec.Release()
	op, err := windowing.NewOperator(spec, schema, windowing.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer op.Release()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i, r := range []string{
		`{"user_id":"u-18273","ts":%d,"event_type":"login","session_id":"s-9"}`,
		`{"user_id":"u-18273","ts":%d,"event_type":"purchase","session_id":"s-9","amount":12.5}`,
		`{"user_id":"u-18273","ts":%d,"event_type":"purchase","session_id":"s-10","amount":30}`,
		`{"user_id":"u-18273","ts":%d,"event_type":"support_ticket","session_id":"s-10"}`,
		`{"user_id":"u-555","ts":%d,"event_type":"login","session_id":"s-11"}`,
	} {
		at := day + int64(i)*3_600_000
		_ = dec.Append(fmt.Appendf(nil, r, at), uint64(i))
	}
	rec := dec.NewRecordBatch()
	defer rec.Release()
	now := time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)
	op.Process(rec, now)
	// Nothing more arrives: after the idle timeout the watermark follows
	// processing time, and the day closes at midnight plus out-of-orderness.
	out := op.Advance(time.Date(2026, 11, 25, 4, 2, 0, 0, time.UTC))
	printRows(out.Features)
	// Output:
	// u-18273 [11-24 00:00, 11-25 00:00) logins=1 purchases=2 spend=42.5 support_tickets=1 sessions=2 events=4
	// u-555 [11-24 00:00, 11-25 00:00) logins=1 purchases=0 spend=null support_tickets=0 sessions=1 events=1
}
