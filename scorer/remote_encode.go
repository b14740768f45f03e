package scorer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Content types the remote scorer sends (RemoteConfig.ContentType) and
// asks for (RemoteConfig.Accept).
const (
	// ContentCSV is headerless CSV, one row per line in the endpoint's
	// feature order, an empty cell for a missing value: what SageMaker's
	// built-in XGBoost container takes.
	ContentCSV = "text/csv"
	// ContentJSON is {"instances": [...]} with one instance per row.
	ContentJSON = "application/json"
	// ContentJSONLines is one instance per line.
	ContentJSONLines = "application/jsonlines"
)

// Shapes of one instance in a JSON or JSON lines request
// (RemoteConfig.Instance).
const (
	// InstanceArray is [v, ...] in feature order: TensorFlow Serving's and
	// most custom containers' shape.
	InstanceArray = "array"
	// InstanceFeatures is {"features": [v, ...]}: what SageMaker's Linear
	// Learner (and the other built-in algorithms' JSON) takes.
	InstanceFeatures = "features"
	// InstanceNamed is {"feature name": v, ...}, for containers that read
	// a data frame.
	InstanceNamed = "named"
)

// ParseContentType returns the canonical name of a request or response
// content type the remote scorer speaks ("" is text/csv), or an error
// naming the ones it does.
func ParseContentType(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", ContentCSV:
		return ContentCSV, nil
	case ContentJSON:
		return ContentJSON, nil
	case ContentJSONLines, "application/x-jsonlines":
		return ContentJSONLines, nil
	}
	return "", fmt.Errorf("content type %q is not one of %s, %s, %s", s, ContentCSV, ContentJSON, ContentJSONLines)
}

// parseInstance checks a JSON instance shape ("" is InstanceArray).
func parseInstance(s string) (string, error) {
	switch s {
	case "", InstanceArray:
		return InstanceArray, nil
	case InstanceFeatures, InstanceNamed:
		return s, nil
	}
	return "", fmt.Errorf("instance shape %q is not one of %s, %s, %s", s, InstanceArray, InstanceFeatures, InstanceNamed)
}

// encoder writes rows in one content type. A request body is
// prefix, row, sep, row, ..., suffix; encoding a row appends to a reused
// buffer with strconv.AppendFloat, so it allocates nothing.
type encoder struct {
	ct, instance  string
	names         [][]byte // `"feature":` for InstanceNamed
	prefix, sep   []byte
	suffix        []byte
	rowOpen       []byte
	rowClose      []byte
	missing       []byte // a NaN value
	rejectInf     bool   // JSON has no infinities
	lineTerminate bool   // each row ends with a newline
}

func newEncoder(ct, instance string, features []string) *encoder {
	e := &encoder{ct: ct, instance: instance}
	switch ct {
	case ContentCSV:
		e.lineTerminate = true
		return e
	case ContentJSON:
		e.prefix, e.sep, e.suffix = []byte(`{"instances":[`), []byte{','}, []byte(`]}`)
	case ContentJSONLines:
		e.lineTerminate = true
	}
	e.missing, e.rejectInf = []byte("null"), true
	switch instance {
	case InstanceFeatures:
		e.rowOpen, e.rowClose = []byte(`{"features":[`), []byte(`]}`)
	case InstanceNamed:
		e.rowOpen, e.rowClose = []byte{'{'}, []byte{'}'}
		e.names = make([][]byte, len(features))
		for j, f := range features {
			k, _ := json.Marshal(f) // a string always marshals
			e.names[j] = append(k, ':')
		}
	default:
		e.rowOpen, e.rowClose = []byte{'['}, []byte{']'}
	}
	return e
}

// row appends row i of cols to dst. It returns the column of a value the
// content type cannot carry (±Inf in JSON), or -1.
func (e *encoder) row(dst []byte, cols [][]float64, i int) ([]byte, int) {
	dst = append(dst, e.rowOpen...)
	for j := range cols {
		if j > 0 {
			dst = append(dst, ',')
		}
		if e.names != nil {
			dst = append(dst, e.names[j]...)
		}
		v := cols[j][i]
		switch {
		case math.IsNaN(v):
			dst = append(dst, e.missing...)
		case e.rejectInf && math.IsInf(v, 0):
			return dst, j
		default:
			dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
		}
	}
	dst = append(dst, e.rowClose...)
	if e.lineTerminate {
		dst = append(dst, '\n')
	}
	return dst, -1
}

// fits reports whether a row of n bytes can join a body of cur bytes
// holding rows rows, the body's closing bytes included, within limit.
func (e *encoder) fits(cur, rows, n, limit int) bool {
	size := cur + n + len(e.suffix)
	if rows == 0 {
		size += len(e.prefix)
	} else {
		size += len(e.sep)
	}
	return size <= limit
}

// add appends an encoded row to body (which holds rows rows so far).
func (e *encoder) add(body *bytes.Buffer, rows int, line []byte) {
	if rows == 0 {
		body.Write(e.prefix)
	} else {
		body.Write(e.sep)
	}
	body.Write(line)
}

// finish closes a body holding at least one row.
func (e *encoder) finish(body *bytes.Buffer) { body.Write(e.suffix) }

// overhead is the framing a body of one row adds to it.
func (e *encoder) overhead() int { return len(e.prefix) + len(e.suffix) }
