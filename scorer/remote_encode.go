package scorer

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"github.com/streamscore/streamscore/scorer/remotespec"
)

// encoder writes rows in one content type. A request body is
// prefix, row, sep, row, ..., suffix; encoding a row appends to a reused
// buffer with strconv.AppendFloat, so it allocates nothing.
type encoder struct {
	ct, instance  string
	names         [][]byte // `"feature":` for remotespec.InstanceNamed
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
	case remotespec.ContentCSV:
		e.lineTerminate = true
		return e
	case remotespec.ContentJSON:
		e.prefix, e.sep, e.suffix = []byte(`{"instances":[`), []byte{','}, []byte(`]}`)
	case remotespec.ContentJSONLines:
		e.lineTerminate = true
	}
	e.missing, e.rejectInf = []byte("null"), true
	switch instance {
	case remotespec.InstanceFeatures:
		e.rowOpen, e.rowClose = []byte(`{"features":[`), []byte(`]}`)
	case remotespec.InstanceNamed:
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
