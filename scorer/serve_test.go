package scorer

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func post(t *testing.T, url, ct, accept string, body []byte) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// The server speaks SageMaker's container contract: the same rows as CSV,
// JSON and JSON lines give the same scores; oversized bodies get 413; bad
// input gets 400 naming the line; unknown types get 415/406.
func TestServeContract(t *testing.T) {
	m := loadFixtureModel(t, "binary_logistic.json")
	url := startServe(t, m, nil)
	resp, err := http.Get(url + "/ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ping: %v %v", err, resp)
	}
	resp.Body.Close()

	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(m.Features())
	want := alloc(1, in.Rows)
	var s Scratch
	m.Predict(cols, in.Rows, want, &s)

	bodies := requestBodies(cols, in.Rows)

	code, body, hdr := post(t, url+"/invocations", "text/csv", "", bodies["text/csv"])
	if code != 200 || hdr.Get("Content-Type") != "text/csv" || !strings.HasPrefix(hdr.Get("X-Amzn-SageMaker-Custom-Attributes"), "model_version=sha256:") {
		t.Fatalf("csv: %d %s %v", code, body, hdr)
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != in.Rows {
		t.Fatalf("csv: %d lines for %d rows", len(lines), in.Rows)
	}
	for i, l := range lines {
		if v, _ := strconv.ParseFloat(l, 64); v != want[0][i] {
			t.Fatalf("csv row %d: %s, want %v", i, l, want[0][i])
		}
	}

	code, body, _ = post(t, url+"/invocations", "application/json", "application/json", bodies["application/json"])
	var pj struct {
		Predictions []struct{ Score float64 } `json:"predictions"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &pj) != nil || len(pj.Predictions) != in.Rows {
		t.Fatalf("json: %d %.200s", code, body)
	}
	for i, p := range pj.Predictions {
		if p.Score != want[0][i] {
			t.Fatalf("json row %d: %v, want %v", i, p.Score, want[0][i])
		}
	}

	code, body, hdr = post(t, url+"/invocations", "application/jsonlines", "", bodies["application/jsonlines"])
	jlines := strings.Split(strings.TrimSpace(body), "\n")
	if code != 200 || hdr.Get("Content-Type") != "application/jsonlines" || len(jlines) != in.Rows {
		t.Fatalf("jsonlines: %d %.200s", code, body)
	}
	var one struct{ Score float64 }
	json.Unmarshal([]byte(jlines[7]), &one)
	if one.Score != want[0][7] {
		t.Fatalf("jsonlines row 7: %v, want %v", one.Score, want[0][7])
	}

	// Named features in an object; a missing name is a missing value.
	code, body, _ = post(t, url+"/invocations", "application/json", "text/csv", []byte(`[{"temp":0.5,"rpm":1200}]`))
	if code != 200 || strings.Count(body, "\n") != 1 {
		t.Fatalf("named instance: %d %s", code, body)
	}

	big := bytes.Repeat([]byte("1,2,3,4,5,6,7,8\n"), MaxPayloadBytes/16+1)
	if code, _, _ := post(t, url+"/invocations", "text/csv", "", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("7 MB body: %d, want 413", code)
	}
	if code, body, _ := post(t, url+"/invocations", "text/csv", "", []byte("1,2,3,4,5,6,7,8\n1,2,x,4,5,6,7,8\n")); code != 400 || !strings.Contains(body, "line 2") || !strings.Contains(body, "rpm") {
		t.Fatalf("bad cell: %d %s", code, body)
	}
	if code, body, _ := post(t, url+"/invocations", "text/csv", "", []byte("1,2,3\n")); code != 400 || !strings.Contains(body, "8 features") {
		t.Fatalf("short row: %d %s", code, body)
	}
	if code, _, _ := post(t, url+"/invocations", "application/x-recordio-protobuf", "", []byte("x")); code != 415 {
		t.Fatalf("unsupported type: %d", code)
	}
	if code, _, _ := post(t, url+"/invocations", "text/csv", "image/png", []byte("1,2,3,4,5,6,7,8\n")); code != 406 {
		t.Fatalf("unsupported accept: %d", code)
	}
}

// requestBodies returns n rows of cols (column-major, NaN missing) as CSV,
// JSON ({"instances": [[...]]}) and JSON lines ({"features": [...]} per
// line) request bodies, keyed by content type.
func requestBodies(cols [][]float64, n int) map[string][]byte {
	var csv, jl bytes.Buffer
	var inst [][]any
	for i := range n {
		row := make([]any, len(cols))
		for j := range cols {
			if j > 0 {
				csv.WriteByte(',')
			}
			if v := cols[j][i]; v == v {
				csv.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
				row[j] = v
			}
		}
		csv.WriteByte('\n')
		inst = append(inst, row)
		b, _ := json.Marshal(map[string]any{"features": row})
		jl.Write(b)
		jl.WriteByte('\n')
	}
	js, _ := json.Marshal(map[string]any{"instances": inst})
	return map[string][]byte{"text/csv": csv.Bytes(), "application/json": js, "application/jsonlines": jl.Bytes()}
}
