package scorer

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

// Each content type and instance shape encodes rows as the containers take
// them: NaN as the format's missing value, numbers in shortest round-trip
// form, the body framed so it parses.
func TestEncoderShapes(t *testing.T) {
	cols := [][]float64{{1.5, math.NaN()}, {-2, 0.1}}
	features := []string{"a", `b"q`}
	for _, tc := range []struct {
		ct, inst, want string
	}{
		{remotespec.ContentCSV, "", "1.5,-2\n,0.1\n"},
		{remotespec.ContentJSON, remotespec.InstanceArray, `{"instances":[[1.5,-2],[null,0.1]]}`},
		{remotespec.ContentJSON, remotespec.InstanceFeatures, `{"instances":[{"features":[1.5,-2]},{"features":[null,0.1]}]}`},
		{remotespec.ContentJSON, remotespec.InstanceNamed, `{"instances":[{"a":1.5,"b\"q":-2},{"a":null,"b\"q":0.1}]}`},
		{remotespec.ContentJSONLines, remotespec.InstanceArray, "[1.5,-2]\n[null,0.1]\n"},
		{remotespec.ContentJSONLines, remotespec.InstanceFeatures, "{\"features\":[1.5,-2]}\n{\"features\":[null,0.1]}\n"},
	} {
		e := newEncoder(tc.ct, tc.inst, features)
		var body bytes.Buffer
		for i := range 2 {
			line, bad := e.row(nil, cols, i)
			if bad >= 0 {
				t.Fatalf("%s %s: row %d refused at column %d", tc.ct, tc.inst, i, bad)
			}
			e.add(&body, i, line)
		}
		e.finish(&body)
		if body.String() != tc.want {
			t.Errorf("%s %s:\n got %q\nwant %q", tc.ct, tc.inst, body.String(), tc.want)
		}
		if tc.ct == remotespec.ContentJSON && !json.Valid(body.Bytes()) {
			t.Errorf("%s %s: invalid JSON", tc.ct, tc.inst)
		}
	}
	// JSON has no infinities: the row is refused, naming the column.
	inf := [][]float64{{1}, {math.Inf(-1)}}
	if _, bad := newEncoder(remotespec.ContentJSON, remotespec.InstanceArray, features).row(nil, inf, 0); bad != 1 {
		t.Errorf("JSON row with -Inf: bad column %d, want 1", bad)
	}
}

// The encoder's fits bound is exact: a body built to it is never over the
// limit and one more row would be.
func TestEncoderFitsExactly(t *testing.T) {
	cols := randomCols(7, 400, 0.1, 5)
	for _, ct := range []string{remotespec.ContentCSV, remotespec.ContentJSON, remotespec.ContentJSONLines} {
		e := newEncoder(ct, remotespec.InstanceFeatures, featureNames(7))
		const limit = 4000
		var body bytes.Buffer
		rows := 0
		for i := range 400 {
			line, _ := e.row(nil, cols, i)
			if !e.fits(body.Len(), rows, len(line), limit) {
				var closed bytes.Buffer
				closed.Write(body.Bytes())
				e.finish(&closed)
				if closed.Len() > limit || closed.Len()+len(line)+len(e.sep) <= limit {
					t.Fatalf("%s: body of %d rows is %d bytes and the next row of %d did not fit (limit %d)", ct, rows, closed.Len(), len(line), limit)
				}
				break
			}
			e.add(&body, rows, line)
			rows++
		}
		if rows == 0 || rows == 400 {
			t.Fatalf("%s: %d rows fit, want the limit to bite", ct, rows)
		}
	}
}

// The response shapes of SageMaker's built-in containers and custom ones,
// read with the default or a configured path.
func TestDecoderShapes(t *testing.T) {
	for _, tc := range []struct {
		name, accept, path, body string
		outputs                  int
		want                     [][]float64 // [output][row]
	}{
		{"xgboost json", remotespec.ContentJSON, "", `{"predictions": [{"score": 0.25}, {"score": 0.5}]}`, 1, [][]float64{{0.25, 0.5}}},
		{"xgboost json multi-class", remotespec.ContentJSON, "", `{"predictions":[{"score":[0.1,0.9]},{"score":[0.7,0.3]}]}`, 2, [][]float64{{0.1, 0.7}, {0.9, 0.3}}},
		{"linear learner json", remotespec.ContentJSON, "", `{"predictions":[{"score":0.4,"predicted_label":0},{"predicted_label":1,"score":0.8}]}`, 1, [][]float64{{0.4, 0.8}}},
		{"linear learner jsonlines multi-class", remotespec.ContentJSONLines, "", "{\"score\": [0.1, 0.9], \"predicted_label\": 1}\n\n{\"score\": [0.6, 0.4], \"predicted_label\": 0}\n", 2, [][]float64{{0.1, 0.6}, {0.9, 0.4}}},
		{"xgboost selectable output", remotespec.ContentJSON, "predictions.*.probabilities[1]", `{"predictions":[{"predicted_label":1,"probabilities":[0.2,0.8]},{"predicted_label":0,"probabilities":[0.9,0.1]}]}`, 1, [][]float64{{0.8, 0.1}}},
		{"xgboost selectable jsonlines", remotespec.ContentJSONLines, "probability", "{\"predicted_label\":1,\"probability\":0.8}\n{\"predicted_label\":0,\"probability\":0.1}", 1, [][]float64{{0.8, 0.1}}},
		{"custom nested", remotespec.ContentJSON, "result.outputs.*.p[0]", `{"model":"m","result":{"outputs":[{"p":[0.3,7]},{"p":[0.6]}]}}`, 1, [][]float64{{0.3, 0.6}}},
		{"bare array", remotespec.ContentJSON, "*", `[0.5, 1e-3]`, 1, [][]float64{{0.5, 0.001}}},
		{"bare rows of classes", remotespec.ContentJSON, "*", `[[0.5,0.5],[0.2,0.8]]`, 2, [][]float64{{0.5, 0.2}, {0.5, 0.8}}},
		{"line is the score", remotespec.ContentJSONLines, "$", "0.5\n[0.25]\n", 1, [][]float64{{0.5, 0.25}}},
		{"escaped key", remotespec.ContentJSON, "predictions.*.score", `{"predictions":[{"sc\u006fre":2},{"score":3}]}`, 1, [][]float64{{2, 3}}},
	} {
		p, err := remotespec.ParseScorePath(tc.path, tc.accept)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		d := decoder{accept: tc.accept, path: p}
		got := alloc(tc.outputs, 2)
		if err := d.parse([]byte(tc.body), []int32{0, 1}, got); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for k := range tc.want {
			for i := range tc.want[k] {
				if got[k][i] != tc.want[k][i] {
					t.Errorf("%s: score %d of row %d = %v, want %v", tc.name, k, i, got[k][i], tc.want[k][i])
				}
			}
		}
	}
}

// A response that does not match what was sent is refused with an error
// that says where.
func TestDecoderRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, accept, path, body string
		outputs                  int
		want                     string
	}{
		{"too few rows", remotespec.ContentJSON, "", `{"predictions":[{"score":1}]}`, 1, "1 rows, 2 were sent"},
		{"too many rows", remotespec.ContentJSON, "", `{"predictions":[{"score":1},{"score":1},{"score":1}]}`, 1, "more than the 2 rows"},
		{"missing key", remotespec.ContentJSON, "", `{"predictions":[{"score":1},{"label":1}]}`, 1, `row 2: predictions.*.score: no key "score"`},
		{"null score", remotespec.ContentJSON, "", `{"predictions":[{"score":null},{"score":1}]}`, 1, "null is not a number"},
		{"string score", remotespec.ContentJSONLines, "", "{\"score\":\"0.5\"}\n{\"score\":1}", 1, `"0.5" is not a number`},
		{"class count", remotespec.ContentJSON, "", `{"predictions":[{"score":[1,2,3]},{"score":[1,2]}]}`, 2, "more than the 2 scores"},
		{"one score for many", remotespec.ContentJSON, "", `{"predictions":[{"score":1},{"score":2}]}`, 2, "want an array of 2"},
		{"not rows", remotespec.ContentJSON, "", `{"predictions":{"score":1}}`, 1, "not an array of rows"},
		{"index past end", remotespec.ContentJSON, "predictions.*.p[3]", `{"predictions":[{"p":[1]},{"p":[1]}]}`, 1, "index [3] is past the end"},
		{"bad json", remotespec.ContentJSON, "", `{"predictions":[`, 1, "response"},
		{"bad line", remotespec.ContentJSONLines, "", "{\"score\":1}\n{\"score\":", 1, "response line 2"},
		{"huge number", remotespec.ContentJSON, "", `{"predictions":[{"score":1e999},{"score":1}]}`, 1, "beyond the range"},
		{"jsonlines lines", remotespec.ContentJSONLines, "", "{\"score\":1}\n", 1, "1 lines of scores, 2 rows were sent"},
	} {
		p, err := remotespec.ParseScorePath(tc.path, tc.accept)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		d := decoder{accept: tc.accept, path: p}
		err = d.parse([]byte(tc.body), []int32{0, 1}, alloc(tc.outputs, 2))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// Encoding and decoding allocate nothing per row in steady state, in every
// content type, as the CSV path always has.
func TestRemoteCodecAllocs(t *testing.T) {
	const n = 200
	cols := randomCols(30, n, 0.05, 9)
	rows := make([]int32, n)
	for i := range rows {
		rows[i] = int32(i)
	}
	scores := alloc(1, n)
	for _, ct := range []string{remotespec.ContentCSV, remotespec.ContentJSON, remotespec.ContentJSONLines} {
		e := newEncoder(ct, remotespec.InstanceFeatures, featureNames(30))
		var body bytes.Buffer
		var line []byte
		encode := func() {
			body.Reset()
			for i := range n {
				line, _ = e.row(line[:0], cols, i)
				e.add(&body, i, line)
			}
			e.finish(&body)
		}
		encode()
		if a := testing.AllocsPerRun(20, encode); a != 0 {
			t.Errorf("%s: encoding %d rows allocates %v times", ct, n, a)
		}
		resp := serveResponse(ct, cols[0][:n])
		p, _ := remotespec.ParseScorePath("", ct)
		d := decoder{accept: ct, path: p}
		decode := func() {
			if err := d.parse(resp, rows, scores); err != nil {
				t.Fatal(err)
			}
		}
		decode()
		// Under the race detector sync.Pool drops items at random, so
		// json.Valid's pooled scanner may be allocated again on each call
		// (once per JSON body, once per JSON line); nothing else may be.
		allowed := 0.0
		if remoteRace {
			switch ct {
			case remotespec.ContentJSON:
				allowed = 1
			case remotespec.ContentJSONLines:
				allowed = n
			}
		}
		if a := testing.AllocsPerRun(20, decode); a > allowed {
			t.Errorf("%s: decoding %d rows allocates %v times, want at most %v", ct, n, a, allowed)
		}
	}
}

// serveResponse writes scores as `streamscore serve` answers in ct.
func serveResponse(ct string, scores []float64) []byte {
	var b []byte
	if ct == remotespec.ContentJSON {
		b = append(b, `{"predictions":[`...)
	}
	for i, v := range scores {
		if math.IsNaN(v) {
			v = 0.5
		}
		switch ct {
		case remotespec.ContentCSV:
			b = append(append(b, []byte(formatFloat(v))...), '\n')
		case remotespec.ContentJSON:
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, `{"score":`...), formatFloat(v)...), '}')
		case remotespec.ContentJSONLines:
			b = append(append(append(b, `{"score":`...), formatFloat(v)...), "}\n"...)
		}
	}
	if ct == remotespec.ContentJSON {
		b = append(b, "]}"...)
	}
	return b
}

func formatFloat(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// FuzzRemoteResponse: no response body makes the decoders panic, whatever
// the path, and a body they accept filled every score.
func FuzzRemoteResponse(f *testing.F) {
	f.Add(`{"predictions":[{"score":0.5},{"score":[1,2]}]}`, "predictions.*.score", uint8(1))
	f.Add("{\"score\":1}\n{\"score\":2}\n", "score", uint8(2))
	f.Add(`[[1,2],[3,4]]`, "*", uint8(1))
	f.Add("0.1,0.2\n0.3,0.4", "", uint8(0))
	f.Add(`{"a":{"b":[{"c":[0,1]},{"c":[2,3]}]}}`, "a.b.*.c[1]", uint8(1))
	f.Fuzz(func(t *testing.T, body, path string, ct uint8) {
		accept := []string{remotespec.ContentCSV, remotespec.ContentJSON, remotespec.ContentJSONLines}[int(ct)%3]
		p, err := remotespec.ParseScorePath(path, accept)
		if err != nil {
			return
		}
		for _, outputs := range []int{1, 2} {
			d := decoder{accept: accept, path: p}
			sc := alloc(outputs, 2)
			for k := range sc {
				sc[k][0], sc[k][1] = math.NaN(), math.NaN()
			}
			if d.parse([]byte(body), []int32{1, 0}, sc) != nil {
				continue
			}
			for k := range sc {
				if math.IsNaN(sc[k][0]) || math.IsNaN(sc[k][1]) {
					t.Fatalf("accepted %q (%s, path %q, %d outputs) but left a score unset: %v", body, accept, path, outputs, sc)
				}
			}
		}
	})
}
