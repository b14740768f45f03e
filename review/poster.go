// Package review turns a reviewer's verdict on an alert into ground truth
// (docs/quality.md, "Human review"). The alert sink gives each firing
// alert under review a link and a task on the review queue
// (config.Review); Handler serves the page the link opens and a JSON API,
// and Poster writes each verdict to the labels stream as one label record,
// which the pipeline's labels shards write to S3 as Model Monitor's ground
// truth, judging the reviewed prediction by its result_id.
//
// A verdict always names the prediction it judges: the configuration
// refuses alerts.review unless labels carry an inference id. Joined by
// entity within a horizon instead, a confirmation at time T would mark
// every prediction of the entity in [T - horizon, T) positive, not only the
// reviewed one, and a false alarm (a 0 by entity) would change nothing;
// no choice of T makes it judge exactly the reviewed window.
package review

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/review/link"
	"github.com/streamscore/streamscore/sinks"
	"github.com/streamscore/streamscore/windowing"
)

// The labels of the two verdicts the review page offers.
const (
	Confirmed  = 1.0 // the alert was right: the positive class
	FalseAlarm = 0.0 // the alert was wrong: the negative class
)

// Limits on the free text a verdict carries: a name and a sentence or
// two, far under a Kinesis record's 1 MiB.
const (
	MaxReviewerBytes = 256
	MaxNoteBytes     = 4096
)

// Verdict is a reviewer's judgement of one alert's prediction.
type Verdict struct {
	// ResultID is the judged prediction's result_id (the alert's), 32 hex
	// digits: the label's inference id.
	ResultID string `json:"result_id"`
	// Entity is the alert's entity: the label's entity and partition key.
	Entity string `json:"entity"`
	// Time is the label's event time. The review page sets it to the
	// alert's window_end, so the label falls in the hours the quality
	// monitor reads for that window's period whenever it is given; a
	// label joins by id, so its time places it, it does not judge.
	Time time.Time `json:"time"`
	// Label is Confirmed (1) or FalseAlarm (0) for a binary model; any
	// number the labels schema's field can hold otherwise.
	Label float64 `json:"label"`
	// Reviewer and Note are written to the record as "reviewer" and
	// "note" (the labels stream's consumers may read them; the ground
	// truth keeps the label alone).
	Reviewer string `json:"reviewer,omitempty"`
	Note     string `json:"note,omitempty"`
}

// FieldError is a verdict that cannot be a label, naming the field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func bad(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// KinesisAPI is the part of the Kinesis client the poster uses.
type KinesisAPI interface {
	PutRecord(context.Context, *kinesis.PutRecordInput, ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
}

// Receipt says where a verdict's record went.
type Receipt struct {
	ShardID        string `json:"shard_id"`
	SequenceNumber string `json:"sequence_number"`
}

// Poster writes verdicts to the labels stream, one record each, in the
// stream's schema.
type Poster struct {
	client KinesisAPI
	stream string
	// The labels schema's fields: entity, time, label and inference id.
	entity, time, label, id string
	format                  windowing.TimeFormat
	labelType               string
	// extra says whether the reviewer and note keys go in the record (a
	// schema field of the same name would otherwise be written twice).
	extra               bool
	futureSkew, pastAge time.Duration
	now                 func() time.Time
}

// NewPoster reads the labels section of cfg: its stream, the stream's
// schema, the label and inference id fields. It refuses a configuration
// whose labels carry no inference id (see the package comment).
func NewPoster(client KinesisAPI, cfg *config.Config) (*Poster, error) {
	l := cfg.Labels
	if l == nil {
		return nil, fmt.Errorf("review: %s: no labels section: a verdict is posted as a label on the labels stream", cfg.File)
	}
	if l.InferenceID == "" {
		return nil, fmt.Errorf("review: %s: labels.inference_id is missing: a verdict judges the reviewed prediction by its result_id", cfg.File)
	}
	var st *config.Stream
	for i := range cfg.Streams {
		if cfg.Streams[i].Name == l.Stream {
			st = &cfg.Streams[i]
		}
	}
	if st == nil || cfg.Schemas[st.Schema] == nil {
		return nil, fmt.Errorf("review: %s: labels.stream %q has no schema", cfg.File, l.Stream)
	}
	sc := cfg.Schemas[st.Schema]
	p := &Poster{client: client, stream: l.Stream, entity: sc.Entity, time: sc.Time, label: l.Label, id: l.InferenceID,
		format: sc.Spec(st.Schema).TimeFormat, futureSkew: st.MaxFutureSkew.D(), pastAge: st.MaxPastAge.D(), now: time.Now, extra: true}
	if p.futureSkew == 0 {
		p.futureSkew = windowing.DefaultMaxFutureSkew
	}
	for _, f := range sc.Fields {
		switch f.Name {
		case l.Label:
			p.labelType = f.Type
		case "reviewer", "note":
			if f.Type != "string" {
				return nil, fmt.Errorf("review: %s: the labels schema's field %q is a %s: a verdict writes its %s there as a string", cfg.File, f.Name, f.Type, f.Name)
			}
		}
	}
	if p.labelType == "" {
		return nil, fmt.Errorf("review: %s: labels.label %q is not a field of the labels stream's schema", cfg.File, l.Label)
	}
	for _, k := range []string{p.entity, p.time, p.label, p.id} {
		if k == "reviewer" || k == "note" {
			p.extra = false // the schema's own field: written once, not overwritten
		}
	}
	return p, nil
}

// Stream is the labels stream verdicts go to.
func (p *Poster) Stream() string { return p.stream }

// Encode checks a verdict and returns its record, the labels stream's
// event: the entity and time fields, the label typed as the schema's
// field, the inference id, and the reviewer and note. A *FieldError names
// what cannot be a label.
func (p *Poster) Encode(v Verdict) ([]byte, error) {
	id, err := sinks.AppendInferenceID(nil, strings.TrimSpace(v.ResultID))
	if err != nil {
		if v.ResultID == "" {
			return nil, bad("result_id", "missing: the alert's result_id names the prediction judged")
		}
		return nil, bad("result_id", "%v", err)
	}
	if err := sinks.CheckEntity([]byte(v.Entity)); err != nil {
		return nil, bad("entity", "%v", err)
	}
	ts, err := p.encodeTime(v.Time)
	if err != nil {
		return nil, err
	}
	label, err := p.encodeLabel(v.Label)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"reviewer", v.Reviewer, MaxReviewerBytes}, {"note", v.Note, MaxNoteBytes}} {
		if len(f.v) > f.max || !utf8.ValidString(f.v) {
			return nil, bad(f.name, "want valid UTF-8 of at most %d bytes, got %d bytes", f.max, len(f.v))
		}
	}
	// Keys in a fixed order; json.Marshal of a string cannot fail.
	b := []byte{'{'}
	put := func(key string, raw []byte) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(key)
		b = append(append(append(b, k...), ':'), raw...)
	}
	str := func(s string) []byte { j, _ := json.Marshal(s); return j }
	put(p.entity, str(v.Entity))
	put(p.time, ts)
	put(p.label, label)
	put(p.id, str(string(id)))
	if p.extra && v.Reviewer != "" {
		put("reviewer", str(v.Reviewer))
	}
	if p.extra && v.Note != "" {
		put("note", str(v.Note))
	}
	return append(b, '}'), nil
}

// encodeTime writes t as the schema's time format expects, refusing a
// time the labels stream's bounds would dead-letter.
func (p *Poster) encodeTime(t time.Time) ([]byte, error) {
	if t.IsZero() {
		return nil, bad("time", "missing: the label's event time (the alert's window_end)")
	}
	now := p.now()
	if t.After(now.Add(p.futureSkew)) {
		return nil, bad("time", "%s is more than %v ahead of now: the labels stream would dead-letter it", link.FormatTime(t), p.futureSkew)
	}
	if p.pastAge > 0 && t.Before(now.Add(-p.pastAge)) {
		return nil, bad("time", "%s is more than the labels stream's max_past_age (%v) ago: it would be dead-lettered", link.FormatTime(t), p.pastAge)
	}
	switch p.format {
	case windowing.TimeEpochS, windowing.TimeEpochMS:
		ns := t.UnixNano()
		if ns < 0 {
			return nil, bad("time", "%s is before 1970: the schema's %s cannot hold it", link.FormatTime(t), p.format)
		}
		unit, digits := int64(time.Second), 9
		if p.format == windowing.TimeEpochMS {
			unit, digits = int64(time.Millisecond), 6
		}
		out := strconv.AppendInt(nil, ns/unit, 10)
		if frac := ns % unit; frac != 0 {
			s := strings.TrimRight(fmt.Sprintf("%0*d", digits, frac), "0")
			out = append(append(out, '.'), s...)
		}
		return out, nil
	}
	return json.Marshal(link.FormatTime(t))
}

// encodeLabel writes the label as the schema's label field holds it.
func (p *Poster) encodeLabel(v float64) ([]byte, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, bad("label", "%v is not a label: want a finite number (1 confirmed, 0 false alarm)", v)
	}
	switch p.labelType {
	case "bool":
		switch v {
		case 1:
			return []byte("true"), nil
		case 0:
			return []byte("false"), nil
		}
		return nil, bad("label", "%v: the labels schema's field is a bool: want 1 (confirmed) or 0 (false alarm)", v)
	case "int64":
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return nil, bad("label", "%v: the labels schema's field is an int64: want a whole number", v)
		}
		return strconv.AppendInt(nil, int64(v), 10), nil
	case "float64":
		return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
	case "string":
		return json.Marshal(strconv.FormatFloat(v, 'g', -1, 64))
	}
	return nil, fmt.Errorf("review: the labels schema's field %q is a %s, which cannot hold a label", p.label, p.labelType)
}

// maxPartitionKey is Kinesis's limit on a partition key, in characters.
const maxPartitionKey = 256

// Post checks and writes one verdict to the labels stream, partitioned by
// its entity (an entity longer than Kinesis takes as a key is hashed: a
// labels stream's partitioning only spreads load).
func (p *Poster) Post(ctx context.Context, v Verdict) (Receipt, error) {
	data, err := p.Encode(v)
	if err != nil {
		return Receipt{}, err
	}
	key := v.Entity
	if utf8.RuneCountInString(key) > maxPartitionKey {
		sum := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(sum[:])
	}
	in := &kinesis.PutRecordInput{Data: data, PartitionKey: aws.String(key)}
	if strings.HasPrefix(p.stream, "arn:") {
		in.StreamARN = aws.String(p.stream)
	} else {
		in.StreamName = aws.String(p.stream)
	}
	out, err := p.client.PutRecord(ctx, in)
	if err != nil {
		return Receipt{}, fmt.Errorf("review: putting the verdict on %s on labels stream %s: %w", v.ResultID, p.stream, err)
	}
	return Receipt{ShardID: aws.ToString(out.ShardId), SequenceNumber: aws.ToString(out.SequenceNumber)}, nil
}

// IsFieldError reports whether err is a verdict's bad field (the caller's
// fault, a 400), and which.
func IsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
