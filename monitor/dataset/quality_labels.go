package dataset

// Reading ground-truth labels: a CSV with inference_id (or entity and
// time) and label columns, or Model Monitor's ground-truth JSON Lines with
// our streamscore extension, one label a line.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/streamscore/streamscore/sinks"
)

// ReadLabels reads every object of a labels input (Open's) and calls fn
// with each label, in file order. An object is a CSV with a header line
// naming label and inference_id, or entity and time, or all three (other
// columns are ignored), or Model Monitor's ground-truth JSON Lines, one
// record a line:
//
//	{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "..."}, "eventVersion": "0"}
//
// where eventId is the inference id and data the label (a JSON string, or
// a number or bool). Model Monitor reads only the CSV encoding, whose data
// is the label alone; so does this. Our ground-truth sink adds an object
// Model Monitor ignores, naming the labelled entity and when its event
// happened (RFC 3339), so a label without an inference id (eventId "")
// can judge by entity:
//
//	..., "eventVersion": "0", "streamscore": {"entity": "m-1", "time": "2026-12-03T07:00:00.123Z"}}
//
// When present it must hold both. A label needs an inference id, or an
// entity and a time: a record with neither is a bad record, named by its
// line and field. Either format may be gzip'd; a file is JSON Lines when
// its first character is "{". Labels are numbers, and true and false read
// as 1 and 0. Duplicates are handed over as they come.
func ReadLabels(ctx context.Context, objs []Object, opts LabelOptions, fn func(Label) error) (ReadStats, error) {
	rd := &reader{ctx: ctx, opts: opts.ReadOptions}
	for _, o := range objs {
		if err := rd.object(o, func(name string, r *bufio.Reader) error {
			if jsonLines(r) {
				return rd.labelsJSONLines(name, r, opts.Binary, fn)
			}
			return rd.labelsCSV(name, r, opts.Binary, fn)
		}, func(name string, _ *os.File) error {
			return fmt.Errorf("%s: Parquet: want labels as a CSV with a header line naming %s, or Model Monitor's ground-truth JSON Lines", name, labelsColumns.want())
		}); err != nil {
			return rd.stats, err
		}
	}
	return rd.stats, nil
}

// labelsColumns are a labels CSV's: the label, and the inference id it
// judges or the entity and time it judges by.
var labelsColumns = csvColumns{
	required: [][]string{{ColInferenceID, ColLabel}, {sinks.ColEntity, ColTime, ColLabel}},
}

func (rd *reader) labelsCSV(name string, r io.Reader, binary bool, fn func(Label) error) error {
	return rd.readCSV(name, r, labelsColumns, func(rec []string, col cells, line int) error {
		bad := func(column string, err error) error {
			return &RecordError{File: name, Line: line, Column: column, Err: err}
		}
		l := Label{ID: col.get(rec, ColInferenceID), Entity: col.get(rec, sinks.ColEntity)}
		var err error
		if l.Time, err = parseTime(col.get(rec, ColTime)); err != nil {
			return bad(ColTime, err)
		}
		if l.ID == "" {
			switch {
			case col[sinks.ColEntity] < 0 || col[ColTime] < 0:
				return bad(ColInferenceID, errors.New("empty"))
			case l.Entity == "" && l.Time.IsZero():
				return bad(ColInferenceID, errors.New("empty, and no entity and time to judge by instead"))
			case l.Entity == "":
				return bad(sinks.ColEntity, errors.New("empty: a label without an inference id judges its entity's predictions"))
			case l.Time.IsZero():
				return bad(ColTime, errors.New("empty: a label without an inference id judges by when its event happened"))
			}
		}
		if l.Value, err = ParseLabel(rec[col[ColLabel]], binary); err != nil {
			return bad(ColLabel, err)
		}
		return fn(l)
	})
}

// groundTruth is one record of Model Monitor's ground-truth JSON Lines,
// with our streamscore extension. eventVersion ("0") is not checked: it
// is the only version there is.
type groundTruth struct {
	GroundTruthData *struct {
		Data     json.RawMessage `json:"data"`
		Encoding string          `json:"encoding"`
	} `json:"groundTruthData"`
	EventMetadata *struct {
		EventID string `json:"eventId"`
	} `json:"eventMetadata"`
	Streamscore *struct {
		Entity *string `json:"entity"`
		Time   *string `json:"time"`
	} `json:"streamscore"`
}

func (rd *reader) labelsJSONLines(name string, br *bufio.Reader, binary bool, fn func(Label) error) error {
	var buf []byte
	for line := 1; ; line++ {
		b, err := readLine(br, buf[:0])
		buf = b[:0]
		if errors.Is(err, io.EOF) && len(b) == 0 {
			return nil
		}
		bad := func(field string, err error) error {
			return rd.bad(&RecordError{File: name, Line: line, Column: field, Err: err})
		}
		switch {
		case errors.Is(err, errLineTooLong):
			if err := bad("", err); err != nil {
				return err
			}
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		b = bytes.TrimSpace(bytes.TrimPrefix(b, []byte("\uFEFF")))
		if len(b) == 0 {
			continue
		}
		l, field, err := parseGroundTruth(b, binary)
		if err != nil {
			if err := bad(field, err); err != nil {
				return err
			}
			continue
		}
		if err := fn(l); err != nil {
			return err
		}
		rd.stats.Records++
		if err := rd.tick(); err != nil {
			return err
		}
	}
}

// parseGroundTruth reads one ground-truth record; on error, field names
// the field at fault ("" for the record as a whole).
func parseGroundTruth(b []byte, binary bool) (l Label, field string, err error) {
	var g groundTruth
	if err := json.Unmarshal(b, &g); err != nil {
		return l, "", fmt.Errorf("not a ground-truth record: %w", err)
	}
	if g.EventMetadata != nil {
		l.ID = strings.TrimSpace(g.EventMetadata.EventID)
	}
	if ss := g.Streamscore; ss != nil {
		if ss.Entity == nil || strings.TrimSpace(*ss.Entity) == "" {
			return l, "streamscore.entity", errors.New("missing or empty: it names the labelled entity")
		}
		if ss.Time == nil || strings.TrimSpace(*ss.Time) == "" {
			return l, "streamscore.time", errors.New("missing or empty: it is when the labelled event happened")
		}
		l.Entity = strings.TrimSpace(*ss.Entity)
		if l.Time, err = parseTime(strings.TrimSpace(*ss.Time)); err != nil {
			return l, "streamscore.time", err
		}
	}
	switch {
	case l.ID == "" && g.Streamscore == nil && g.EventMetadata == nil:
		return l, "eventMetadata", errors.New("missing: it holds eventId, the inference id")
	case l.ID == "" && g.Streamscore == nil:
		return l, "eventMetadata.eventId", errors.New("missing or empty: it is the inference id (or add streamscore's entity and time to judge by entity)")
	case g.GroundTruthData == nil:
		return l, "groundTruthData", errors.New("missing: it holds the label")
	case g.GroundTruthData.Encoding != "" && !strings.EqualFold(g.GroundTruthData.Encoding, "CSV"):
		return l, "groundTruthData.encoding", fmt.Errorf("%q: only CSV is read, as Model Monitor reads ground truth", g.GroundTruthData.Encoding)
	}
	text, err := jsonScalar(g.GroundTruthData.Data)
	if err != nil {
		return l, "groundTruthData.data", err
	}
	if strings.ContainsAny(text, ",\n") {
		return l, "groundTruthData.data", fmt.Errorf("%q holds more than a label", text)
	}
	if l.Value, err = ParseLabel(text, binary); err != nil {
		return l, "groundTruthData.data", err
	}
	return l, "", nil
}

// jsonScalar is a JSON string's text, or a number's or bool's as written.
func jsonScalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", errors.New("missing: it is the label")
	case raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case raw[0] == '{' || raw[0] == '[':
		return "", fmt.Errorf("%.40s: want the label as a string, a number or a bool", raw)
	}
	return string(raw), nil
}

var errLineTooLong = fmt.Errorf("over %d KiB without a line break", maxRecordLine>>10)

// readLine reads one line into buf (without its line break). A line over
// maxRecordLine is read to its end and dropped, returning errLineTooLong,
// so the next line can still be read.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	long := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !long {
			if len(buf)+len(chunk) > maxRecordLine+1 {
				long, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case long && (err == nil || errors.Is(err, io.EOF)):
			return buf, errLineTooLong
		case err != nil:
			return buf, err
		}
		return bytes.TrimSuffix(buf, []byte{'\n'}), nil
	}
}

// ParseLabel reads a label: a number, or true and false as 1 and 0 (case
// does not matter; blank space around it neither). With binary, only 1, 0,
// true and false are labels. The one rule for every label input.
func ParseLabel(s string, binary bool) (float64, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, errors.New("no label")
	case strings.EqualFold(s, "true"):
		return 1, nil
	case strings.EqualFold(s, "false"):
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a number, true or false", s)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%q is not a finite number", s)
	case binary && v != 0 && v != 1:
		return 0, fmt.Errorf("%q is not a binary label (1, 0, true or false)", s)
	}
	return v, nil
}
