package scorer

// The request decoding of `streamscore serve` before issue 11 (read the whole
// body with io.ReadAll, unmarshal every instance through encoding/json),
// kept only so BenchmarkServeDecode can report its allocation side by side
// with the current decoder in one run.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// legacyDecode is the old handler's path from body to feature columns.
func legacyDecode(ct string, r io.Reader, features []string) ([][]float64, int, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, err
	}
	cols, n, herr := legacyDecodeInstances(ct, body, features)
	if herr != nil {
		return nil, 0, herr
	}
	return cols, n, nil
}

// legacyDecodeInstances parses a request body into feature columns in model order.
func legacyDecodeInstances(ct string, body []byte, features []string) ([][]float64, int, *httpError) {
	nf := len(features)
	cols := make([][]float64, nf)
	add := func(row []float64) {
		for j := range nf {
			cols[j] = append(cols[j], row[j])
		}
	}
	switch ct {
	case "text/csv":
		row := make([]float64, nf)
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 64*1024), MaxPayloadBytes+1)
		line, n := 0, 0
		for sc.Scan() {
			line++
			text := strings.TrimRight(sc.Text(), "\r")
			if strings.TrimSpace(text) == "" {
				continue
			}
			cells := strings.Split(text, ",")
			if len(cells) != nf {
				return nil, 0, legacyBadInput("line %d: %d values, the model takes %d features (%s)", line, len(cells), nf, strings.Join(features, ","))
			}
			for j, c := range cells {
				v, err := parseCell(c)
				if err != nil {
					return nil, 0, legacyBadInput("line %d, column %d (%s): %v", line, j+1, features[j], err)
				}
				row[j] = v
			}
			add(row)
			n++
		}
		if err := sc.Err(); err != nil {
			return nil, 0, legacyBadInput("csv: %v", err)
		}
		return cols, n, nil
	case "application/json":
		var doc json.RawMessage = body
		var wrapper struct {
			Instances json.RawMessage `json:"instances"`
		}
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
			if err := json.Unmarshal(body, &wrapper); err != nil {
				return nil, 0, legacyBadInput("json: %v", err)
			}
			if wrapper.Instances == nil {
				return nil, 0, legacyBadInput(`json: want {"instances": [...]} or an array of instances`)
			}
			doc = wrapper.Instances
		}
		var instances []json.RawMessage
		if err := json.Unmarshal(doc, &instances); err != nil {
			return nil, 0, legacyBadInput("json: instances: %v", err)
		}
		row := make([]float64, nf)
		for i, raw := range instances {
			if err := legacyDecodeInstance(raw, features, row); err != nil {
				return nil, 0, legacyBadInput("json: instance %d: %v", i, err)
			}
			add(row)
		}
		return cols, len(instances), nil
	case "application/jsonlines", "application/x-jsonlines":
		row := make([]float64, nf)
		n := 0
		for i, line := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := legacyDecodeInstance(line, features, row); err != nil {
				return nil, 0, legacyBadInput("jsonlines: line %d: %v", i+1, err)
			}
			add(row)
			n++
		}
		return cols, n, nil
	}
	return nil, 0, &httpError{http.StatusUnsupportedMediaType, "ValidationError",
		fmt.Sprintf("content type %q is not supported: use text/csv, application/json or application/jsonlines", ct)}
}

// decodeInstance reads one instance: [v...], {"features": [v...]} or
// {"name": v, ...}. null is a missing value.
func legacyDecodeInstance(raw []byte, features []string, row []float64) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var obj map[string]*float64
		var wrapped struct {
			Features []*float64 `json:"features"`
		}
		if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Features != nil {
			return legacyFillRow(wrapped.Features, features, row)
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return err
		}
		known := 0
		for j, name := range features {
			v, ok := obj[name]
			if ok {
				known++
			}
			if ok && v != nil {
				row[j] = *v
			} else {
				row[j] = math.NaN()
			}
		}
		if known != len(obj) {
			for k := range obj {
				if !legacyContains(features, k) {
					return fmt.Errorf("unknown feature %q", k)
				}
			}
		}
		return nil
	}
	var vals []*float64
	if err := json.Unmarshal(raw, &vals); err != nil {
		return err
	}
	return legacyFillRow(vals, features, row)
}

func legacyContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func legacyFillRow(vals []*float64, features []string, row []float64) error {
	if len(vals) != len(features) {
		return fmt.Errorf("%d values, the model takes %d features", len(vals), len(features))
	}
	for j, v := range vals {
		if v == nil {
			row[j] = math.NaN()
		} else {
			row[j] = *v
		}
	}
	return nil
}

func legacyBadInput(format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, "ValidationError", fmt.Sprintf(format, args...)}
}
