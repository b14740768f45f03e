package loadtest

// What the run's loop did, read back from where the pipeline keeps it:
// the quality monitor's judgement.json and statistics.json in S3, and the
// promotion decision in DynamoDB.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/pipeline"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/scorer"
)

// FlywheelReport is what the run's loop did.
type FlywheelReport struct {
	Scorer string
	// Labels is how many failures were published as labels.
	Labels int
	// Requests are the retraining requests, in arrival order; Skipped,
	// when set, is why none was trained.
	Requests []RetrainRun
	Skipped  string
	// Periods are the quality monitor's judged periods, oldest first.
	Periods []QualityPeriod
	// Decision is the scorer's promotion decision at the end (generation
	// 0: the configured champion still serves).
	Decision promotion.Decision
	// Unjudged, when set, says the run ended before the quality monitor
	// judged its last period.
	Unjudged string
	// Problems are what could not be read back.
	Problems []string
}

// QualityPeriod is one judged period.
type QualityPeriod struct {
	Start, End time.Time
	Labels     int64
	Models     []ModelQuality
	Promotion  []pipeline.JudgedPromotion
}

// ModelQuality is one model version's quality in a period. Precision and
// recall are NaN without a labelled row (or, for precision, a positive
// prediction).
type ModelQuality struct {
	Role, Version     string
	Labelled          int64
	Precision, Recall float64
	Violated          []string
}

// collect reads the loop's outcome back.
func (f *flywheel) collect(ctx context.Context) *FlywheelReport {
	f.mu.Lock()
	r := &FlywheelReport{Scorer: f.scorer.Name, Labels: f.sent, Skipped: f.skipped, Unjudged: f.unjudged}
	for _, q := range f.requests {
		r.Requests = append(r.Requests, *q)
	}
	f.mu.Unlock()
	bucket := f.cfg.Sinks.S3.Bucket
	prefix := pipeline.QualityPrefix(f.cfg, f.scorer.Name)
	keys, err := listKeys(ctx, f.c.S3, bucket, prefix)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, "/"+pipeline.JudgementFile) {
			continue
		}
		p, err := f.period(ctx, bucket, k)
		if err != nil {
			r.Problems = append(r.Problems, err.Error())
			continue
		}
		r.Periods = append(r.Periods, p)
	}
	slices.SortFunc(r.Periods, func(a, b QualityPeriod) int { return a.Start.Compare(b.Start) })
	if pc := f.scorer.Promotion; pc != nil && f.c.DynamoDB != nil {
		st, err := dynamo.NewStore(f.c.DynamoDB, dynamo.Config{Table: pc.TableName(f.cfg.Pipeline), Pipeline: f.cfg.Pipeline,
			Scorer: f.scorer.Name, Configured: promotion.Model{Key: f.scorer.Model}})
		if err == nil {
			r.Decision, err = st.Current(ctx)
		}
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("the promotion decision: %v", err))
		}
	}
	return r
}

func (f *flywheel) period(ctx context.Context, bucket, key string) (QualityPeriod, error) {
	var j pipeline.Judgement
	if err := getJSON(ctx, f.c.S3, bucket, key, &j); err != nil {
		return QualityPeriod{}, err
	}
	p := QualityPeriod{Start: j.PeriodStart, End: j.PeriodEnd, Labels: j.Counts.Labels, Promotion: j.Promotion}
	for _, m := range j.Models {
		mq := ModelQuality{Role: string(m.Role), Version: m.Version, Labelled: m.Counts.Labelled, Precision: math.NaN(), Recall: math.NaN(), Violated: m.Violated}
		if m.Counts.Labelled > 0 && m.Statistics != "" {
			b, k, err := scorer.ParseS3URI(m.Statistics)
			if err != nil {
				return p, fmt.Errorf("%s: model %s: %w", key, m.Version, err)
			}
			body, err := getObject(ctx, f.c.S3, b, k)
			if err != nil {
				return p, err
			}
			st, err := quality.ReadStatistics(bytes.NewReader(body), m.Statistics)
			if err != nil {
				return p, err
			}
			if st.Binary != nil {
				mq.Precision, mq.Recall = st.Binary.Precision.Value, st.Binary.Recall.Value
			}
		}
		p.Models = append(p.Models, mq)
	}
	return p, nil
}

func listKeys(ctx context.Context, c *s3.Client, bucket, prefix string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return keys, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

func getObject(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	return body, nil
}

func getJSON(ctx context.Context, c *s3.Client, bucket, key string, v any) error {
	body, err := getObject(ctx, c, bucket, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// awaitJudged waits until the quality monitor has judged a period ending
// at or after end and, when a retrained model was loaded, a period in
// which it scored labelled rows: for at most the time a period takes to
// come due (its horizon, the labels' delay, the settle time) and a minute
// more. When they do not come, the report says so.
func (f *flywheel) awaitJudged(ctx context.Context, end time.Time) {
	period, settle, _ := pipeline.MonitorTiming(f.cfg)
	delay := f.cfg.Labels.Delay.D()
	if delay <= 0 {
		delay = pipeline.DefaultLabelsDelay
	}
	var horizon time.Duration
	for _, q := range f.cfg.Monitor.Quality {
		if q.Scorer == f.scorer.Name {
			horizon = q.Horizon.D()
		}
	}
	deadline := time.Now().Add(period + horizon + delay + settle + time.Minute)
	bucket, prefix := f.cfg.Sinks.S3.Bucket, pipeline.QualityPrefix(f.cfg, f.scorer.Name)
	seen := map[string]bool{}
	judged := map[string]bool{} // versions with labelled rows
	var last bool
	for {
		keys, _ := listKeys(ctx, f.c.S3, bucket, prefix)
		for _, k := range keys {
			if seen[k] || !strings.HasSuffix(k, "/"+pipeline.JudgementFile) {
				continue
			}
			var j pipeline.Judgement
			if getJSON(ctx, f.c.S3, bucket, k, &j) != nil {
				continue
			}
			seen[k] = true
			last = last || !j.PeriodEnd.Before(end)
			for _, m := range j.Models {
				if m.Counts.Labelled > 0 {
					judged[m.Version] = true
				}
			}
		}
		var missing []string
		if !last {
			missing = append(missing, fmt.Sprintf("no period ending at or after the traffic's end (%s) was judged", end.Format("15:04:05")))
		}
		f.mu.Lock()
		for _, r := range f.requests {
			if r.Version != "" && !judged[r.Version] {
				missing = append(missing, fmt.Sprintf("the model request %s trained (%s) was not judged on labelled rows", r.ID, r.Version))
			}
		}
		f.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			f.mu.Lock()
			f.unjudged = strings.Join(missing, "; ") + " in time"
			f.mu.Unlock()
			return
		}
		sleepCtx(ctx, 2*time.Second)
	}
}

// claims are the loop's verdict lines: labels in, quality judged per
// model version, retraining, and the promotion's outcome.
func (r *FlywheelReport) claims() []claim {
	cs := []claim{{"labels", fmt.Sprintf("%d failures published as labels on the labels stream", r.Labels), false}}
	judged := 0
	for _, p := range r.Periods {
		for _, m := range p.Models {
			if m.Labelled > 0 {
				judged++
			}
		}
	}
	q := fmt.Sprintf("%d periods judged against the labels (%d model-version verdicts with labelled rows)", len(r.Periods), judged)
	if r.Unjudged != "" {
		q += "; " + r.Unjudged
	}
	cs = append(cs, claim{"quality", q, judged == 0 || r.Unjudged != ""})
	switch {
	case len(r.Requests) == 0:
		cs = append(cs, claim{"retraining", "no retraining requested", false})
	default:
		for _, q := range r.Requests {
			cs = append(cs, claim{"retraining", q.text(), q.Status != "SUCCEEDED" && q.Status != "RUNNING" && r.Skipped == ""})
		}
	}
	if r.Skipped != "" && len(r.Requests) > 0 {
		cs = append(cs, claim{"training", "skipped: " + r.Skipped, false})
	}
	cs = append(cs, claim{"promotion", r.outcome(), false})
	return cs
}

func (q RetrainRun) text() string {
	s := fmt.Sprintf("%s (%s) at %s: %s", q.ID, q.Trigger, q.At.Format("15:04:05"), q.Status)
	if q.Status == "SUCCEEDED" {
		s += fmt.Sprintf(" in %s: model %s (sha256 %.12s) is the challenger, version %s", q.Finished.Sub(q.At).Round(100*time.Millisecond), q.Output.Model, q.Output.SHA256, q.Version)
	}
	if q.Error != "" {
		s += ": " + q.Error
	}
	return s
}

// outcome is the promotion's story: promoted and why, or the latest
// verdict that weighed the challenger against the champion (a period
// with too few rows, or without both classes, weighs nothing).
func (r *FlywheelReport) outcome() string {
	if d := r.Decision; d.Generation > 0 {
		return fmt.Sprintf("generation %d: %s %s (sha256 %.12s) by %s: %s", d.Generation, d.Action, d.Champion.Key, d.Champion.SHA256, d.By, d.Reason)
	}
	var last *pipeline.JudgedPromotion
	var end time.Time
	for _, p := range r.Periods {
		for i, v := range p.Promotion {
			if last == nil || promotion.Outcome(v.Outcome) != promotion.OutcomeTooFewRows && promotion.Outcome(v.Outcome) != promotion.OutcomeNoEvidence {
				last, end = &p.Promotion[i], p.End
			}
		}
	}
	if last == nil {
		return "champion kept: no period judged the challenger"
	}
	return fmt.Sprintf("champion kept; the last verdict (period ending %s): %s: %s", end.Format("15:04:05"), last.Outcome, last.Reason)
}

// writeQuality writes the table of live quality, period by period and
// model version by model version.
func (r *FlywheelReport) writeQuality(w io.Writer) {
	if len(r.Periods) == 0 {
		return
	}
	fmt.Fprintf(w, "  live quality of scorer %s (per period, per model version; at the alert threshold):\n", r.Scorer)
	for _, p := range r.Periods {
		for _, m := range p.Models {
			if m.Labelled == 0 {
				continue
			}
			fmt.Fprintf(w, "    %s-%s  %-10s %-24s labelled %4d  precision %s  recall %s", p.Start.Format("15:04:05"), p.End.Format("15:04:05"),
				m.Role, shortVersion(m.Version), m.Labelled, metricText(m.Precision), metricText(m.Recall))
			if len(m.Violated) > 0 {
				fmt.Fprintf(w, "  violates %s", strings.Join(m.Violated, ", "))
			}
			fmt.Fprintln(w)
		}
		for _, v := range p.Promotion {
			fmt.Fprintf(w, "      promotion: %s: %s\n", v.Outcome, v.Reason)
		}
	}
}

func metricText(v float64) string {
	if math.IsNaN(v) {
		return "  - "
	}
	return fmt.Sprintf("%.2f", v)
}

func shortVersion(v string) string {
	if len(v) > 24 {
		return v[:24]
	}
	return v
}
