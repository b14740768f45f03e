package training

// The training set: the scorer's results of the request's range joined to
// the ground truth. Two passes over local copies of the results files:
// the first through monitor/dataset's prediction reader (its row rule:
// updates and partial rows left out; its ids), deciding which row of each
// result_id is kept (the one written first, docs/sinks.md) and its label
// by JudgePeriod's rules; the second decoding the kept rows' features
// with pqarrow and writing them out.

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/sinks"
)

// The training set's columns besides the features, in the shape
// examples/models/train.py reads: the entity first, then the window's
// end, the features, the label, and when the entity's positive outcome
// happened (empty for a negative row).
const (
	ColLabel     = "label"
	ColOutcomeAt = "outcome_at"
)

// timeLayout is the training set's time format: RFC 3339 in UTC with
// microseconds, which Python's datetime.fromisoformat reads.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// SetOptions say where BuildSet finds its inputs and how it joins them.
type SetOptions struct {
	// S3 reads the results and the ground truth.
	S3 dataset.S3
	// Results is the scorer's results: an s3:// prefix (the S3 sink's
	// prefix and the scorer's name, as the quality monitor reads them).
	Results string
	// GroundTruth is the s3:// prefix of the ground truth (JSON Lines or
	// CSV, as ReadLabels reads them).
	GroundTruth string
	// From and To are the range: predictions whose window_end is in
	// (From, To], the monitor's period rule.
	From, To time.Time
	// Horizon, above 0, labels predictions by entity too (JudgePeriod's
	// rule): positive when a positive label of the entity falls in
	// (window_end, window_end + Horizon], negative otherwise.
	Horizon time.Duration
	// Delay is how long after a prediction's horizon its label may still
	// arrive (labels.delay): the ground truth is read from the hours of
	// (From, To + Horizon + Delay], the quality monitor's files.
	Delay time.Duration
	// Dir receives local copies of the results files; the caller removes
	// it.
	Dir string
	// Bad is given each unreadable record, as dataset.ReadOptions.Bad is:
	// nil stops at the first.
	Bad func(*dataset.RecordError) error
}

// SetStats say what BuildSet read and wrote.
type SetStats struct {
	// Files are the results files read (after pruning by key).
	Files int `json:"files"`
	// Rows are the training rows written; Positives those labelled 1.
	Rows      int64 `json:"rows"`
	Positives int64 `json:"positives"`
	// Unlabelled predictions of the range had no label (left out);
	// Duplicates are rows of a result_id already kept (a replay);
	// Outside are predictions whose window_end is outside the range.
	Unlabelled int64 `json:"unlabelled"`
	Duplicates int64 `json:"duplicates"`
	Outside    int64 `json:"outside"`
	// Features are the feature columns, in the CSV's (and the model's)
	// order.
	Features []string `json:"features"`
	// PredictionsRead and LabelsRead are the two readers' counts.
	PredictionsRead dataset.ReadStats `json:"predictions_read"`
	LabelsRead      dataset.ReadStats `json:"labels_read"`
}

// keptRow is the row kept for a result_id: when it was written (Unix
// ns; 0 unknown), its label, and its positive outcome's time (0: none
// known). 24 bytes, plus the id and the map's overhead.
type keptRow struct {
	written int64
	outcome int64
	label   float64
}

// labelIndex holds the ground truth: by inference id (the last read
// wins) and, for the horizon rule, each entity's positive label times,
// sorted and distinct.
type labelIndex struct {
	byID     map[string]idLabel
	positive map[string][]int64
}

type idLabel struct {
	value float64
	at    int64
}

// BuildSet writes the training set of o's range to w as CSV: entity,
// window_end, the features, label, outcome_at. A prediction is labelled
// by its inference id when a label has it, else (with a horizon) by its
// entity; unlabelled ones are counted and left out. Of a result_id
// written twice, the row written first is kept; update and partial rows
// are left out (docs/sinks.md).
func BuildSet(ctx context.Context, o SetOptions, w io.Writer) (*SetStats, error) {
	if o.S3 == nil {
		return nil, errors.New("training set: no S3 client")
	}
	if !o.From.Before(o.To) {
		return nil, fmt.Errorf("training set: range (%s, %s]: from is not before to", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	st := &SetStats{}
	files, err := fetchResults(ctx, o, st)
	if err != nil {
		return nil, err
	}
	labels, err := readLabels(ctx, o, st)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return st, fmt.Errorf("training set: no results under %s for (%s, %s]", o.Results, o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	objs, err := dataset.Open(ctx, nil, o.Dir)
	if err != nil {
		return nil, fmt.Errorf("training set: %w", err)
	}
	kept := map[string]keptRow{}
	from, to, h := o.From.UnixNano(), o.To.UnixNano(), int64(o.Horizon)
	st.PredictionsRead, err = dataset.ReadPredictions(ctx, objs, dataset.ReadOptions{Bad: o.Bad}, func(p dataset.Prediction) error {
		t := p.WindowEnd.UnixNano()
		if p.WindowEnd.IsZero() || t <= from || t > to {
			st.Outside++
			return nil
		}
		row, ok := labels.judge(p, t, h)
		if !ok {
			st.Unlabelled++
			return nil
		}
		if !p.Written.IsZero() {
			row.written = p.Written.UnixNano()
		}
		if k, dup := kept[p.ID]; dup {
			st.Duplicates++
			if k.written != 0 && row.written != 0 && row.written < k.written { // the readers' rule: first written
				kept[p.ID] = row
			}
			return nil
		}
		kept[p.ID] = row
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("training set: reading the results: %w", err)
	}
	if err := writeSet(ctx, files, kept, w, st); err != nil {
		return nil, err
	}
	return st, nil
}

// judge labels a prediction by JudgePeriod's rules; false: unlabelled.
func (x *labelIndex) judge(p dataset.Prediction, t, h int64) (keptRow, bool) {
	if l, ok := x.byID[p.ID]; ok {
		r := keptRow{label: l.value}
		if l.value == 1 {
			r.outcome = l.at
		}
		return r, true
	}
	if h <= 0 || p.Entity == "" {
		return keptRow{}, false
	}
	pos := x.positive[p.Entity]
	k, found := slices.BinarySearch(pos, t)
	if found {
		k++ // a label at t itself is not after the prediction: (t, t+h]
	}
	if k < len(pos) && pos[k] <= t+h {
		return keptRow{label: 1, outcome: pos[k]}, true
	}
	return keptRow{label: 0}, true
}

// readLabels holds the ground truth that can label a prediction of the
// range: every label with an id, and positive labels by entity in
// (From, To + Horizon].
func readLabels(ctx context.Context, o SetOptions, st *SetStats) (*labelIndex, error) {
	x := &labelIndex{byID: map[string]idLabel{}, positive: map[string][]int64{}}
	if o.GroundTruth == "" {
		return nil, errors.New("training set: no ground-truth prefix (the request's data.ground_truth_prefix): nothing labels the results")
	}
	objs, err := labelObjects(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("training set: ground truth %s: %w", o.GroundTruth, err)
	}
	lo, hi := o.From.UnixNano(), o.To.Add(o.Horizon).UnixNano()
	st.LabelsRead, err = dataset.ReadLabels(ctx, objs, dataset.LabelOptions{ReadOptions: dataset.ReadOptions{Bad: o.Bad}, Binary: true},
		func(l dataset.Label) error {
			var at int64
			if !l.Time.IsZero() {
				at = l.Time.UnixNano()
			}
			if l.ID != "" {
				x.byID[l.ID] = idLabel{value: l.Value, at: at}
				return nil
			}
			if o.Horizon > 0 && l.Value == 1 && l.Entity != "" && at > lo && at <= hi {
				x.positive[l.Entity] = append(x.positive[l.Entity], at)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("training set: reading the ground truth %s: %w", o.GroundTruth, err)
	}
	for e, ts := range x.positive {
		slices.Sort(ts)
		x.positive[e] = slices.Compact(ts)
	}
	return x, nil
}

// labelObjects are the ground-truth files of the hours from From's to
// To + Horizon + Delay's (Model Monitor's yyyy/mm/dd/hh/ layout, which the
// ground-truth sink writes by the label's event time): the files the
// quality monitor reads for the same predictions, so the memory held is
// the range's labels, not the whole history's.
func labelObjects(ctx context.Context, o SetOptions) ([]dataset.Object, error) {
	bucket, prefix, err := splitS3(prefixURI(o.GroundTruth))
	if err != nil {
		return nil, err
	}
	var objs []dataset.Object
	last := o.To.Add(o.Horizon + o.Delay)
	for h := o.From.UTC().Truncate(time.Hour); !h.After(last); h = h.Add(time.Hour) {
		hp := sinks.GroundTruthHourPrefix(prefix, h)
		p := s3.NewListObjectsV2Paginator(o.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(hp)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, hp, err)
			}
			for _, obj := range page.Contents {
				if key := aws.ToString(obj.Key); !hidden(key[len(hp):]) {
					objs = append(objs, dataset.S3Object(o.S3, bucket, key))
				}
			}
		}
	}
	return objs, nil
}

// fetchResults copies the results files that can hold windows of the
// range to o.Dir, named so that their order is the keys' order. A file
// whose key says its latest window ended at or before From, or whose
// partition (by window start) starts after To, is not read.
func fetchResults(ctx context.Context, o SetOptions, st *SetStats) ([]string, error) {
	bucket, prefix, err := splitS3(prefixURI(o.Results))
	if err != nil {
		return nil, fmt.Errorf("training set: results %w", err)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("training set: %w", err)
	}
	var files []string
	p := s3.NewListObjectsV2Paginator(o.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("training set: listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if hidden(key[len(prefix):]) || !strings.HasSuffix(key, ".parquet") {
				continue
			}
			if end, ok := sinks.ResultKeyWindowEnd(key); ok && !end.After(o.From) {
				continue
			}
			if start, ok := sinks.ResultsPartitionTime(key[len(prefix):]); ok && start.After(o.To) {
				continue
			}
			path := filepath.Join(o.Dir, fmt.Sprintf("%08d.parquet", len(files)))
			if err := download(ctx, o.S3, bucket, key, path); err != nil {
				return nil, fmt.Errorf("training set: %w", err)
			}
			files = append(files, path)
		}
	}
	st.Files = len(files)
	return files, nil
}

// download streams an object to a local file, so a results file of any
// size costs disk, not memory.
func download(ctx context.Context, c dataset.S3Getter, bucket, key, path string) error {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, out.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// hidden: a name below the prefix with a part starting with "_" or ".",
// which readers of the lake skip (dataset.Open's rule).
func hidden(rel string) bool {
	for part := range strings.SplitSeq(rel, "/") {
		if strings.HasPrefix(part, "_") || strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

// prefixURI makes an s3:// location a prefix (ending in "/").
func prefixURI(u string) string {
	if strings.HasSuffix(u, "/") {
		return u
	}
	return u + "/"
}

// splitS3 splits s3://bucket/key.
func splitS3(uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	bucket, key, _ = strings.Cut(rest, "/")
	if !ok || bucket == "" {
		return "", "", fmt.Errorf("%q: want s3://bucket/prefix", uri)
	}
	return bucket, key, nil
}

// writeSet writes the kept rows of files, in file order, as CSV.
func writeSet(ctx context.Context, files []string, kept map[string]keptRow, w io.Writer, st *SetStats) error {
	cw := csv.NewWriter(w)
	var header bool
	for _, path := range files {
		err := readFeatures(ctx, path, &st.Features, func(r featureRow) error {
			k, ok := kept[r.id]
			if !ok || k.written != r.written {
				return nil
			}
			delete(kept, r.id) // written once, even if the same row was written twice
			if !header {
				header = true
				if err := cw.Write(slices.Concat([]string{sinks.ColEntity, sinks.ColWindowEnd}, st.Features, []string{ColLabel, ColOutcomeAt})); err != nil {
					return err
				}
			}
			rec := append(append([]string{r.entity, r.windowEnd.UTC().Format(timeLayout)}, r.features...),
				strconv.FormatFloat(k.label, 'g', -1, 64), "")
			if k.outcome != 0 {
				rec[len(rec)-1] = time.Unix(0, k.outcome).UTC().Format(timeLayout)
			}
			st.Rows++
			if k.label == 1 {
				st.Positives++
			}
			return cw.Write(rec)
		})
		if err != nil {
			return fmt.Errorf("training set: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("training set: writing the CSV: %w", err)
	}
	return nil
}

// formatNumber is a feature's CSV cell: empty for a missing value
// (train.py reads it as NaN).
func formatNumber(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
