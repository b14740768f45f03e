package dataset

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// fuzzObject is an object of the given bytes, named "fuzz".
func fuzzObject(data []byte) []Object {
	return []Object{{name: "fuzz", open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}}}
}

// fixtureSeeds are the quality fixtures and the bad records of
// TestReadBadRecords (the long line left out), with whether a labels read
// of each is binary.
func fixtureSeeds(labels bool) (seeds [][]byte, binary []bool) {
	for _, p := range []string{predictionsCSV, labelsCSV, labelsJSONL, labelsGzip, resultsLabels, resultsPQ} {
		if b, err := os.ReadFile(p); err == nil {
			seeds, binary = append(seeds, b), append(binary, labels)
		}
	}
	for _, c := range badCases {
		if len(c.content) < 4096 && c.labels == labels {
			seeds, binary = append(seeds, []byte(c.content)), append(binary, c.binary)
		}
	}
	return seeds, binary
}

// checkBad checks what a skipping read reported: every bad record names
// the file and its line or row, and the counts agree.
func checkBad(t *testing.T, seen []*RecordError, st ReadStats, err error) {
	t.Helper()
	if err != nil && !strings.Contains(err.Error(), "fuzz") {
		t.Errorf("error does not name the file: %v", err)
	}
	for _, e := range seen {
		if e.File != "fuzz" || (e.Line < 1 && e.Row < 1) || !strings.HasPrefix(e.Error(), "fuzz:") && !strings.HasPrefix(e.Error(), "fuzz: row ") {
			t.Errorf("a bad record is not named by file and line or row: %+v (%v)", e, e)
		}
	}
	if st.Bad != int64(len(seen)) {
		t.Errorf("stats count %d bad records, the rule saw %d", st.Bad, len(seen))
	}
}

// FuzzReadLabels: whatever bytes a labels input holds, a read either fails
// naming the file, or gives labels with an id or an entity and a time (in
// UTC, representable in Unix nanoseconds, as the join compares them),
// trimmed, and a finite value (0 or 1 when binary); skipping bad records,
// each is named by file and line, and a read that succeeded without
// skipping gives the same labels with none.
func FuzzReadLabels(f *testing.F) {
	seeds, binary := fixtureSeeds(true)
	for i, s := range seeds {
		f.Add(s, binary[i])
	}
	f.Add([]byte("\uFEFFinference_id,label\n\"a\nb\",TRUE\n"), true)
	f.Add([]byte(`{"groundTruthData": {"data": "1e308"}, "eventMetadata": {"eventId": "x"}}`), false)
	f.Add([]byte(`{"groundTruthData":{"data":"1","encoding":"CSV"},"eventMetadata":{"eventId":""},"eventVersion":"0","streamscore":{"entity":"m-1","time":"2026-12-03T07:00:00.123Z"}}`+"\n"+
		`{"groundTruthData":{"data":"0","encoding":"CSV"},"eventMetadata":{"eventId":"r1"},"eventVersion":"0","streamscore":{"entity":" m-2","time":"2026-12-03T07:00:00+14:00"}}`), true)
	f.Add([]byte("entity,time,label,inference_id\nm-1,2026-12-03T07:00:00Z,1,\n,,0,r2\nm-3,1677-12-31T23:59:59Z,1,\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		read := func(bad func(*RecordError) error) ([]Label, ReadStats, error) {
			var out []Label
			st, err := ReadLabels(t.Context(), fuzzObject(data), LabelOptions{ReadOptions: ReadOptions{Bad: bad}, Binary: binary}, func(l Label) error {
				out = append(out, l)
				return nil
			})
			return out, st, err
		}
		strict, _, strictErr := read(nil)
		var seen []*RecordError
		got, st, err := read(func(e *RecordError) error { seen = append(seen, e); return nil })
		checkBad(t, seen, st, err)
		if strictErr != nil && !strings.Contains(strictErr.Error(), "fuzz") {
			t.Errorf("error does not name the file: %v", strictErr)
		}
		if strictErr == nil && (err != nil || len(seen) > 0 || !sameLabels(strict, got)) {
			t.Errorf("a clean read gave %v; skipping gave %v, %v, %d bad", strict, got, err, len(seen))
		}
		for _, l := range got {
			_, timed := unixNano(l.Time)
			keyed := l.ID != "" || l.Entity != "" && timed
			if !keyed || l.ID != strings.TrimSpace(l.ID) || l.Entity != strings.TrimSpace(l.Entity) ||
				!l.Time.IsZero() && (!timed || l.Time.Location() != time.UTC) ||
				math.IsNaN(l.Value) || math.IsInf(l.Value, 0) || binary && l.Value != 0 && l.Value != 1 {
				t.Errorf("label %+v accepted (binary %v)", l, binary)
			}
		}
		if st.Records != int64(len(got)) {
			t.Errorf("stats count %d records, %d handed over", st.Records, len(got))
		}
	})
}

// FuzzReadPredictions: whatever bytes a predictions input holds (CSV,
// Parquet, gzip'd or not), a read either fails naming the file or gives
// predictions with an id; bad records are named by file and line or row.
func FuzzReadPredictions(f *testing.F) {
	seeds, _ := fixtureSeeds(false)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte("inference_id,score,model_version\na,,\nb,1e400,v\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var seen []*RecordError
		var got []Prediction
		st, err := ReadPredictions(t.Context(), fuzzObject(data), ReadOptions{Bad: func(e *RecordError) error {
			seen = append(seen, e)
			return nil
		}}, func(p Prediction) error {
			got = append(got, p)
			return nil
		})
		checkBad(t, seen, st, err)
		for _, p := range got {
			if p.ID == "" {
				t.Errorf("prediction %+v accepted without an id", p)
			}
		}
		if st.Records != int64(len(got)) {
			t.Errorf("stats count %d records, %d handed over", st.Records, len(got))
		}
		// A callback's error stops the read and comes back as it is.
		stop := errors.New("stop")
		if _, err := ReadPredictions(t.Context(), fuzzObject(data), ReadOptions{Bad: func(*RecordError) error { return nil }},
			func(Prediction) error { return stop }); len(got) > 0 && !errors.Is(err, stop) {
			t.Errorf("the callback's error: read returned %v", err)
		}
	})
}
