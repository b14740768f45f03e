package windowing

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestEventTimeBoundsAgainstArrival(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	d.SetTimeBounds(TimeBounds{MaxFutureSkew: 5 * time.Minute, MaxPastAge: 24 * time.Hour})
	arrival := time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)
	rec := func(ts string) []byte {
		return fmt.Appendf(nil, `{"machine_id":"m1","ts":%q,"temperature_c":1}`, ts)
	}
	cases := []struct {
		ts      string
		refused string // "" accepted; else a word the reason must hold
	}{
		{"2026-11-24T10:15:00Z", ""},
		{"2026-11-24T10:19:59Z", ""},       // 4m59s ahead: within skew
		{"2026-11-23T10:15:01Z", ""},       // 23h59m59s behind: within age
		{"2076-11-24T10:15:00Z", "ahead"},  // a clock 50 years fast
		{"2026-11-24T10:20:01Z", "ahead"},  // just past the skew
		{"2026-11-23T10:14:59Z", "behind"}, // just past the age
		{"1970-01-01T00:00:00Z", "behind"}, // an unset RTC
	}
	for i, c := range cases {
		err := d.AppendArrived(rec(c.ts), uint64(i), arrival)
		if c.refused == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", c.ts, err)
			}
			continue
		}
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrEventTimeBounds) {
			t.Fatalf("%s: got %v, want a DecodeError wrapping ErrEventTimeBounds", c.ts, err)
		}
		msg := err.Error()
		// The reason names the field, both times and which bound.
		for _, want := range []string{`"ts"`, c.refused, "arrival time 2026-11-24T10:15:00Z", c.ts[:10]} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q lacks %q", c.ts, msg, want)
			}
		}
		if de.Offset != uint64(i) {
			t.Errorf("%s: offset %d, want %d", c.ts, de.Offset, i)
		}
	}
	if got := d.Len(); got != 3 {
		t.Errorf("%d rows appended, want the 3 within bounds", got)
	}
	// Append (no arrival) and a zero arrival apply no bounds: replays of
	// files and the dataset command have no arrival time.
	if err := d.Append(rec("2076-11-24T10:15:00Z"), 10); err != nil {
		t.Errorf("Append without arrival: %v", err)
	}
	if err := d.AppendArrived(rec("2076-11-24T10:15:00Z"), 11, time.Time{}); err != nil {
		t.Errorf("zero arrival: %v", err)
	}
}

func TestEventTimeBoundsOffByDefault(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	if err := d.AppendArrived([]byte(`{"machine_id":"m","ts":"2100-01-01T00:00:00Z"}`), 0, time.Now()); err != nil {
		t.Fatalf("a decoder without bounds refused: %v", err)
	}
}

func TestEntityCheckRefusesWithFieldName(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	d.SetEntityCheck(func(e []byte) error {
		switch {
		case len(e) == 0:
			return errors.New("empty")
		case len(e) > 1024:
			return fmt.Errorf("%d bytes, over the 1024 allowed", len(e))
		case !utf8.Valid(e):
			return errors.New("not valid UTF-8")
		}
		return nil
	})
	ok := []string{"press 17", "Prensa-ñ-東京", strings.Repeat("x", 1024)}
	for i, e := range ok {
		if err := d.Append(fmt.Appendf(nil, `{"machine_id":%q,"ts":"2026-11-24T10:15:00Z"}`, e), uint64(i)); err != nil {
			t.Errorf("legitimate id %q refused: %v", e, err)
		}
	}
	bad := map[string]string{"": "empty", strings.Repeat("y", 3000): "3000 bytes"}
	for e, want := range bad {
		err := d.Append(fmt.Appendf(nil, `{"machine_id":%q,"ts":"2026-11-24T10:15:00Z"}`, e), 99)
		if !errors.Is(err, ErrEntity) || !strings.Contains(err.Error(), `"machine_id"`) || !strings.Contains(err.Error(), want) {
			t.Errorf("entity of %d bytes: got %v, want ErrEntity naming machine_id and %q", len(e), err, want)
		}
	}
	if d.Len() != len(ok) {
		t.Errorf("%d rows, want %d", d.Len(), len(ok))
	}
}

func TestAppendArrivedDoesNotAllocate(t *testing.T) {
	d, _ := newTestDecoder(t, sensorSchema())
	d.SetTimeBounds(TimeBounds{MaxFutureSkew: time.Minute})
	d.SetEntityCheck(func(e []byte) error { return nil })
	r := []byte(sensorRecord)
	arrival := time.Date(2026, 11, 24, 10, 15, 3, 0, time.UTC)
	for range 2000 { // grow the builders first
		_ = d.AppendArrived(r, 0, arrival)
	}
	if a := testing.AllocsPerRun(1000, func() { _ = d.AppendArrived(r, 1, arrival) }); a > 0.01 {
		t.Errorf("%.2f allocations per record", a)
	}
}

// FuzzAppendArrived: whatever the record and the arrival time, an accepted
// record's event time lies within the bounds of its arrival, and a record
// refused for its time lies outside them; nothing panics or overflows.
func FuzzAppendArrived(f *testing.F) {
	f.Add([]byte(sensorRecord), int64(1764000000000000000))
	f.Add([]byte(`{"machine_id":"m","ts":"2116-01-01T00:00:00Z"}`), int64(-1<<62))
	f.Add([]byte(`{"machine_id":"m","ts":"1824-01-01T00:00:00Z"}`), int64(1<<62))
	d, err := NewDecoder(sensorSchema(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer d.Release()
	bounds := TimeBounds{MaxFutureSkew: 5 * time.Minute, MaxPastAge: 24 * time.Hour}
	d.SetTimeBounds(bounds)
	f.Fuzz(func(t *testing.T, data []byte, arrivalNs int64) {
		if arrivalNs == 0 {
			return // zero arrival: no check, by contract
		}
		arrival := time.Unix(0, arrivalNs)
		arrivalNs = min(max(arrivalNs, -maxEventTime+1), maxEventTime-1) // as the decoder clamps it
		before := d.Len()
		err := d.AppendArrived(data, 1, arrival)
		if err != nil {
			if errors.Is(err, ErrEventTimeBounds) && d.Len() != before {
				t.Fatal("a refused record changed the batch")
			}
			return
		}
		rec := d.NewRecordBatch()
		defer rec.Release()
		ts := int64(rec.Column(1).(*array.Timestamp).Value(int(rec.NumRows()) - 1))
		if diff := ts - arrivalNs; (diff > 0 && time.Duration(diff) > bounds.MaxFutureSkew) ||
			(diff < 0 && time.Duration(-diff) > bounds.MaxPastAge) {
			t.Fatalf("accepted event time %d for arrival %d", ts, arrivalNs)
		}
	})
}
