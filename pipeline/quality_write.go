package pipeline

// The quality monitor's verdict files, signals and alerts for a period.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/monitor/quality"
	"github.com/streamscore/streamscore/sinks"
)

// JudgementFile sums up a judged period: what was read, and each model
// version's files. It is written after them, so it marks the period as
// complete.
const JudgementFile = "judgement.json"

// Judgement is judgement.json: what a judged period read, each model
// version's counts and files, and the promotion policy's verdicts. The
// load test's report reads it.
type Judgement struct {
	PeriodStart time.Time            `json:"period_start"`
	PeriodEnd   time.Time            `json:"period_end"`
	Horizon     string               `json:"horizon,omitempty"`
	Threshold   float64              `json:"threshold,omitempty"`
	Files       JudgementFiles       `json:"files"`
	Counts      dataset.PeriodCounts `json:"counts"`
	Models      []JudgedModel        `json:"models"`
	// Promotion is the policy's verdict on each challenger, with one.
	Promotion []JudgedPromotion `json:"promotion,omitempty"`
}

// JudgedPromotion is a promotion verdict as judgement.json records it.
type JudgedPromotion struct {
	Outcome  string `json:"outcome"`
	Promote  bool   `json:"promote"`
	Reason   string `json:"reason"`
	Labelled int64  `json:"labelled"`
}

// JudgementFiles count the files a period's join read.
type JudgementFiles struct {
	Predictions int `json:"predictions"`
	Labels      int `json:"labels"`
}

// JudgedModel is one model version's part of a judgement; Statistics,
// Violations and Champion are s3:// URIs.
type JudgedModel struct {
	Version    string              `json:"model_version"`
	Role       dataset.Role        `json:"role"`
	Counts     dataset.ModelCounts `json:"counts"`
	Statistics string              `json:"statistics"`
	Violations string              `json:"constraint_violations,omitempty"`
	Champion   string              `json:"champion_statistics,omitempty"`
	Violated   []string            `json:"violated,omitempty"`
}

// championStatisticsFile is, beside a challenger's statistics.json, the
// served model's statistics on the same labelled rows.
const championStatisticsFile = "champion_statistics.json"

// write stores a period's verdicts, then judgement.json and progress.json,
// and reports the served versions' metrics and violations.
func (q *qualityMonitor) write(ctx context.Context, start time.Time, pq *dataset.PeriodQuality, nPred, nLabels int) error {
	c := q.c
	end := start.Add(c.period)
	dir := q.store.dir(start)
	j := Judgement{PeriodStart: start, PeriodEnd: end, Files: JudgementFiles{nPred, nLabels}, Counts: pq.Counts}
	if c.horizon > 0 {
		j.Horizon = c.horizon.String()
	}
	if c.problem != dataset.ProblemRegression {
		j.Threshold = quality.NewBinary(c.opts).Options().Threshold
	}
	type signal struct {
		m   dataset.ModelQuality
		rep *quality.Report
		at  string
	}
	var signals []signal
	for _, m := range pq.Models {
		mdir := dir + string(m.Role) + "/" + versionDir(m.Version) + "/"
		jm := JudgedModel{Version: m.Version, Role: m.Role, Counts: m.Counts, Statistics: q.store.URI(mdir + dataset.StatisticsFile)}
		if err := q.putJSON(ctx, mdir+dataset.StatisticsFile, m.Statistics.WriteJSON); err != nil {
			return err
		}
		if m.Champion != nil {
			jm.Champion = q.store.URI(mdir + championStatisticsFile)
			if err := q.putJSON(ctx, mdir+championStatisticsFile, m.Champion.WriteJSON); err != nil {
				return err
			}
		}
		var rep *quality.Report
		// No labelled row, no metric: nothing to check or report.
		if m.Statistics.Dataset.ItemCount == 0 {
			j.Models = append(j.Models, jm)
			continue
		}
		if c.constraints != nil {
			rep = quality.Check(c.constraints, m.Statistics)
			jm.Violations = q.store.URI(mdir + dataset.ViolationsFile)
			if err := q.putJSON(ctx, mdir+dataset.ViolationsFile, rep.WriteViolations); err != nil {
				return err
			}
			for _, v := range rep.Violations {
				jm.Violated = append(jm.Violated, v.Metric)
			}
		}
		j.Models = append(j.Models, jm)
		signals = append(signals, signal{m, rep, jm.Violations})
	}
	if c.promoter != nil {
		for _, v := range c.promoter.judge(ctx, pq.Models) {
			j.Promotion = append(j.Promotion, JudgedPromotion{Outcome: string(v.Outcome), Promote: v.Promote, Reason: v.Reason, Labelled: v.Labelled})
		}
	}
	body, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := q.store.put(ctx, dir+JudgementFile, body); err != nil {
		return err
	}
	body, _ = json.Marshal(qualityProgress{Judged: start})
	if err := q.store.put(ctx, c.out+progressFile, body); err != nil {
		return err
	}
	for _, s := range signals {
		c.obs.QualityJudged(c.scorer, s.m.Version, string(s.m.Role), s.m.Statistics, s.rep)
	}
	c.log.Info("quality: period judged", "scorer", c.scorer, "period", start.Format(time.RFC3339),
		"predictions", pq.Counts.Predictions, "labelled", pq.Counts.Labelled, "labels", pq.Counts.Labels, "models", len(pq.Models))
	// The alert sink retries until its context ends: an SNS outage must
	// not hold the next period's verdict for long.
	actx, cancel := context.WithTimeout(ctx, min(c.period, time.Minute))
	defer cancel()
	for _, s := range signals {
		if s.m.Role != dataset.RoleChampion || s.rep == nil {
			continue // a shadow challenger pages no one, and asks for no retraining
		}
		r := sinks.QualityReport{Pipeline: c.pipeline, Scorer: c.scorer, ModelVersion: s.m.Version,
			PeriodStart: start, PeriodEnd: end, Violations: s.at, Metrics: qualityMetrics(c.constraints, s.m.Statistics, s.rep)}
		c.retrain.quality(ctx, r)
		if c.alerts == nil {
			continue
		}
		if err := c.alerts.Quality(actx, r); err != nil {
			c.log.Error("quality: alert not sent", "scorer", c.scorer, "model", s.m.Version, "err", err)
			c.obs.QualityFailed(c.scorer, "alert")
		}
	}
	return nil
}

// qualityMetrics are the constrained metrics of a version's period, each
// with its verdict, for the alert rules.
func qualityMetrics(cons *quality.Constraints, st *quality.Statistics, rep *quality.Report) []sinks.QualityMetric {
	violated := map[string]bool{}
	for _, v := range rep.Violations {
		violated[v.Metric] = true
	}
	var out []sinks.QualityMetric
	for _, mc := range []quality.MetricConstraints{cons.Binary, cons.Regression} {
		for _, name := range slices.Sorted(maps.Keys(mc)) {
			con := mc[name]
			m, ok := st.Metric(name)
			if !ok {
				continue
			}
			out = append(out, sinks.QualityMetric{Metric: name, Value: m.Value, Threshold: con.Threshold,
				Comparison: string(con.ComparisonOperator), Violated: violated[name]})
		}
	}
	return out
}

func (q *qualityMonitor) putJSON(ctx context.Context, key string, write func(w io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return fmt.Errorf("%s: %w", q.store.URI(key), err)
	}
	return q.store.put(ctx, key, b.Bytes())
}

// versionDir is a model version as a directory name: versions are the
// models' own strings (a path's digest, an S3 version id).
func versionDir(v string) string {
	if v == "" {
		return "unversioned"
	}
	return safeName(v)
}
