package windowing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func sensorSchema() Schema {
	return Schema{
		Name: "sensor", Entity: "machine_id", Time: "ts", TimeFormat: TimeRFC3339,
		Fields: []FieldSpec{
			{Name: "temperature_c", Type: TypeFloat64},
			{Name: "vibration_rms", Type: TypeFloat64},
			{Name: "pressure_bar", Type: TypeFloat64},
			{Name: "rpm", Type: TypeInt64},
			{Name: "current_a", Type: TypeFloat64},
		},
	}
}

func appSchema() Schema {
	return Schema{
		Name: "app", Entity: "user_id", Time: "ts", TimeFormat: TimeRFC3339,
		Fields: []FieldSpec{
			{Name: "event_type", Type: TypeString},
			{Name: "session_id", Type: TypeString},
			{Name: "amount", Type: TypeFloat64},
			{Name: "platform", Type: TypeString},
		},
	}
}

const sensorRecord = `{"machine_id":"press-017","ts":"2026-11-24T10:15:03.250Z","temperature_c":71.2,"vibration_rms":0.42,"pressure_bar":5.1,"rpm":1480,"current_a":12.3}`

func newTestDecoder(t testing.TB, s Schema) (*Decoder, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	d, err := NewDecoder(s, mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Release(); mem.AssertSize(t, 0) })
	return d, mem
}

func TestDecodeSensorRecord(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	if err := d.Append([]byte(sensorRecord), 7); err != nil {
		t.Fatal(err)
	}
	// Dropout: pressure missing, vibration null.
	if err := d.Append([]byte(` {"vibration_rms":null,"machine_id":"press-018","extra":{"a":[1,2,{"b":"}"}]},"ts":"2026-11-24T11:15:03+01:00","temperature_c":-1e2,"rpm":1480.0} `), 8); err != nil {
		t.Fatal(err)
	}
	rec := d.NewRecordBatch()
	defer rec.Release()
	if rec.NumRows() != 2 || rec.NumCols() != 8 {
		t.Fatalf("got %d rows %d cols", rec.NumRows(), rec.NumCols())
	}
	ent := rec.Column(0).(*array.String)
	ts := rec.Column(1).(*array.Timestamp)
	temp := rec.Column(2).(*array.Float64)
	vib := rec.Column(3).(*array.Float64)
	press := rec.Column(4).(*array.Float64)
	rpm := rec.Column(5).(*array.Int64)
	off := rec.Column(7).(*array.Uint64)
	want := time.Date(2026, 11, 24, 10, 15, 3, 250e6, time.UTC).UnixNano()
	if ent.Value(0) != "press-017" || int64(ts.Value(0)) != want || temp.Value(0) != 71.2 || rpm.Value(0) != 1480 || off.Value(0) != 7 {
		t.Errorf("row 0 = %s %d %v %d %d", ent.Value(0), ts.Value(0), temp.Value(0), rpm.Value(0), off.Value(0))
	}
	if ent.Value(1) != "press-018" || int64(ts.Value(1)) != want-250e6 || temp.Value(1) != -100 || rpm.Value(1) != 1480 {
		t.Errorf("row 1 = %s %v %v %d", ent.Value(1), time.Unix(0, int64(ts.Value(1))).UTC(), temp.Value(1), rpm.Value(1))
	}
	if !vib.IsNull(1) || !press.IsNull(1) || vib.IsNull(0) {
		t.Errorf("missing and null values must be null, not zero")
	}
}

func TestDecodeTimeFormats(t *testing.T) {
	for _, tc := range []struct {
		format TimeFormat
		lit    string
		want   int64
	}{
		{TimeRFC3339, `"2026-11-24T10:15:03.250Z"`, 1795515303250000000},
		{TimeRFC3339, `"2026-11-24T10:15:03.123456789-02:30"`, 1795515303123456789 + 9000e9},
		{TimeRFC3339, `"2026-11-24T10:15:03z"`, 0}, // not Go RFC 3339: rejected
		{TimeEpochS, `1795515303.25`, 1795515303250000000},
		{TimeEpochS, `1795515303`, 1795515303000000000},
		{TimeEpochMS, `1795515303250`, 1795515303250000000},
		{TimeEpochMS, `1795515303250.5`, 1795515303250500000},
		{TimeEpochS, `1.795515303e9`, 1795515303000000000},
	} {
		s := Schema{Name: "x", Entity: "id", Time: "t", TimeFormat: tc.format}
		d, _ := newTestDecoder(t, s)
		err := d.Append([]byte(`{"id":"a","t":`+tc.lit+`}`), 1)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%s %s: accepted", tc.format, tc.lit)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.format, tc.lit, err)
			continue
		}
		rec := d.NewRecordBatch()
		if got := int64(rec.Column(1).(*array.Timestamp).Value(0)); got != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.format, tc.lit, got, tc.want)
		}
		rec.Release()
	}
}

func TestDecodeRejectsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		rec, field, reason string
	}{
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z","rpm":"fast"}`, "rpm", "expected int64, got a string"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z","rpm":1.5}`, "rpm", "not an int64"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z","temperature_c":true}`, "temperature_c", "got a boolean"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z","temperature_c":[1]}`, "temperature_c", "object or array"},
		{`{"ts":"2026-11-24T10:15:03Z","rpm":1}`, "machine_id", "missing"},
		{`{"machine_id":null,"ts":"2026-11-24T10:15:03Z"}`, "machine_id", "missing or null"},
		{`{"machine_id":"m","rpm":1}`, "ts", "missing"},
		{`{"machine_id":"m","ts":"yesterday"}`, "ts", "not an RFC 3339 time"},
		{`{"machine_id":"m","ts":1795515303}`, "ts", "expected an RFC 3339 string"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z","temperature_c":1e999}`, "temperature_c", "out of float64 range"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z","temperature_c":01}`, "temperature_c", "invalid JSON"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z"`, "ts", "invalid JSON"},
		{`[1,2]`, "", "not a JSON object"},
		{``, "", "not a JSON object"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z"} x`, "", "data after the object"},
		{`{"machine_id":"m","ts":"2026-11-24T10:15:03Z","other":tru}`, "", "invalid JSON"},
		{"{\"machine_id\":\"m\xff\",\"ts\":\"2026-11-24T10:15:03Z\"}", "machine_id", "UTF-8"},
	} {
		d, _ := newTestDecoder(t, sensorSchema())
		err := d.Append([]byte(tc.rec), 42)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: err = %v, want a *DecodeError", tc.rec, err)
			continue
		}
		if de.Field != tc.field || !strings.Contains(de.Reason, tc.reason) || de.Offset != 42 {
			t.Errorf("%s: got field %q reason %q offset %d; want field %q reason containing %q", tc.rec, de.Field, de.Reason, de.Offset, tc.field, tc.reason)
		}
		if !strings.Contains(err.Error(), "offset 42") {
			t.Errorf("error %q does not give the offset", err)
		}
		if d.Len() != 0 {
			t.Errorf("%s: rejected record left %d rows in the batch", tc.rec, d.Len())
		}
	}
}

func TestDecodeAppEventsEscapesAndNumericEntity(t *testing.T) {
	d, _ := newTestDecoder(t, appSchema())
	recs := []string{
		`{"user_id":"u-18273","ts":"2026-11-24T10:15:03Z","event_type":"login","session_id":"s-9","amount":12.5,"platform":"ios"}`,
		`{"user_id":18273,"ts":"2026-11-24T10:15:04Z","event_type":"purch\u0061se","platform":"caf\u00e9 \ud83d\ude00 \"q\""}`,
	}
	for i, r := range recs {
		if err := d.Append([]byte(r), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	rec := d.NewRecordBatch()
	defer rec.Release()
	ent := rec.Column(0).(*array.String)
	et := rec.Column(2).(*array.String)
	amount := rec.Column(4).(*array.Float64)
	plat := rec.Column(5).(*array.String)
	if ent.Value(1) != "18273" || et.Value(1) != "purchase" || plat.Value(1) != "café 😀 \"q\"" || !amount.IsNull(1) || amount.Value(0) != 12.5 {
		t.Errorf("got %q %q %q amount null=%v", ent.Value(1), et.Value(1), plat.Value(1), amount.IsNull(1))
	}
}

func TestDecodeDoesNotAllocatePerRecord(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	rec := []byte(sensorRecord)
	for i := range 10000 { // grow the builders first
		_ = d.Append(rec, uint64(i))
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Append(rec, 1); err != nil {
			t.Fatal(err)
		}
	})
	d.NewRecordBatch().Release()
	// Builders grow by doubling: an occasional reallocation, never one per record.
	if allocs > 0.01 {
		t.Errorf("%.3f allocations per record", allocs)
	}
}

func TestFastRFC3339MatchesTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-11-24T10:15:03Z", "2024-02-29T23:59:59.999999999+14:00", "1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59.5-00:30", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2000-03-01T00:00:00.1Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := fastRFC3339([]byte(s))
		if !ok || got != want.UnixNano() {
			t.Errorf("%s: fast path %d %v, time.Parse %d", s, got, ok, want.UnixNano())
		}
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T10:15:03.Z"} {
		if _, ok := fastRFC3339([]byte(s)); ok {
			t.Errorf("%s accepted by the fast path", s)
		}
	}
}
