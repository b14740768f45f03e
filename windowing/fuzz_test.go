package windowing

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

func fuzzSchema() Schema {
	return Schema{
		Name: "fuzz", Entity: "id", Time: "ts", TimeFormat: TimeRFC3339,
		Fields: []FieldSpec{
			{Name: "f", Type: TypeFloat64},
			{Name: "i", Type: TypeInt64},
			{Name: "b", Type: TypeBool},
			{Name: "s", Type: TypeString},
			{Name: "at", Type: TypeTimestamp},
		},
	}
}

// FuzzDecode checks the hand-written scanner against encoding/json: it
// never panics, accepts only valid JSON objects, and what it accepts it
// decodes to the same values; what it rejects it rejects with a
// *DecodeError, leaving the batch as it was.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		sensorRecord,
		`{"id":"a","ts":"2026-11-24T10:15:03Z","f":1.5,"i":-3,"b":true,"s":"x\u00e9\n","at":"2026-11-24T10:15:03.5+01:00"}`,
		`{"id":7,"ts":"2026-11-24T10:15:03Z","f":null,"i":null,"other":[{"a":[]},"]}",1e5,false,null]}`,
		`{"id":"a","ts":"2026-11-24T10:15:03Z","i":2.0e0,"\u0066":-0}`,
		`{"id":"a","ts":"2026-11-24T10:15:03Z","f":"1"}`,
		`{"id":"a","ts":"2026-11-24T10:15:03Z"`, `[]`, `{}`, ``, `{"id":"\ud83d\ude00","ts":"2026-11-24T10:15:03Z"}`,
	} {
		f.Add([]byte(s))
	}
	d, err := NewDecoder(fuzzSchema(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := d.Len()
		err := d.Append(data, 9)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset != 9 {
				t.Fatalf("error %v is not a *DecodeError with the offset", err)
			}
			if d.Len() != before {
				t.Fatal("rejected record changed the batch")
			}
			var obj map[string]any
			if json.Unmarshal(data, &obj) == nil && obj != nil && de.Field == "" {
				t.Fatalf("valid JSON object %q rejected without naming a field: %v", data, err)
			}
			return
		}
		if d.Len() != before+1 {
			t.Fatal("accepted record not appended")
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("accepted %q, encoding/json says %v", data, err)
		}
		rec := d.NewRecordBatch()
		defer rec.Release()
		row := int(rec.NumRows()) - 1
		// entity: a string, or a number's literal text
		switch v := m["id"].(type) {
		case string:
			if got := rec.Column(0).(*array.String).Value(row); got != v {
				t.Fatalf("id %q, encoding/json %q", got, v)
			}
		case json.Number:
			if got := rec.Column(0).(*array.String).Value(row); got != v.String() {
				t.Fatalf("id %q, encoding/json %q", got, v)
			}
		default:
			t.Fatalf("accepted id %#v", v)
		}
		want, err := time.Parse(time.RFC3339Nano, m["ts"].(string))
		if err != nil || int64(rec.Column(1).(*array.Timestamp).Value(row)) != want.UnixNano() {
			t.Fatalf("ts %v, encoding/json %v (%v)", rec.Column(1).(*array.Timestamp).Value(row), want, err)
		}
		for c, name := range []string{"f", "i", "b", "s", "at"} {
			col := rec.Column(2 + c)
			v, present := m[name]
			if !present || v == nil {
				if !col.IsNull(row) {
					t.Fatalf("%s missing or null, decoded as a value", name)
				}
				continue
			}
			if col.IsNull(row) {
				t.Fatalf("%s = %v decoded as null", name, v)
			}
			switch name {
			case "f":
				x, _ := strconv.ParseFloat(string(v.(json.Number)), 64)
				if got := col.(*array.Float64).Value(row); got != x && !(math.IsNaN(x) && math.IsNaN(got)) {
					t.Fatalf("f %v, want %v", got, x)
				}
			case "i":
				x, err := v.(json.Number).Int64()
				if err != nil {
					fx, _ := v.(json.Number).Float64()
					x = int64(fx)
				}
				if got := col.(*array.Int64).Value(row); got != x {
					t.Fatalf("i %v, want %v", got, x)
				}
			case "b":
				if got := col.(*array.Boolean).Value(row); got != v.(bool) {
					t.Fatalf("b %v, want %v", got, v)
				}
			case "s":
				if got := col.(*array.String).Value(row); got != v.(string) {
					t.Fatalf("s %q, want %q", got, v)
				}
			case "at":
				w, err := time.Parse(time.RFC3339Nano, v.(string))
				if err != nil || int64(col.(*array.Timestamp).Value(row)) != w.UnixNano() {
					t.Fatalf("at %v, want %v (%v)", col.(*array.Timestamp).Value(row), w, err)
				}
			}
		}
	})
}
