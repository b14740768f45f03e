package scorer

import (
	"context"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// Scorer scores Arrow feature batches. Implementations are safe for
// concurrent use by many goroutines, each with its own Result.
//
// Score fills res with one row per row of rec, in order. It returns an error
// only when the batch as a whole cannot be handled (a feature column is
// missing or has an unsupported type, or ctx ended); rows that could not be
// scored because a remote endpoint failed come back with Source
// SourceNone and res.Err set, for the dead-letter sink.
type Scorer interface {
	Score(ctx context.Context, rec arrow.RecordBatch, res *Result) error
	// Outputs is the number of scores per row.
	Outputs() int
}

// Source says who scored a row.
type Source uint8

// Row sources.
const (
	// SourceNone marks a row nobody scored: the endpoint failed and no
	// fallback is configured. Hand it to the dead-letter sink.
	SourceNone Source = iota
	// SourcePrimary: scored by the configured model or endpoint.
	SourcePrimary
	// SourceFallback: scored by the fallback model because the endpoint
	// was unavailable (breaker open, timeouts, errors).
	SourceFallback
	// SourceCanary: routed to the challenger by the canary split.
	SourceCanary
)

func (s Source) String() string {
	switch s {
	case SourcePrimary:
		return "primary"
	case SourceFallback:
		return "fallback"
	case SourceCanary:
		return "canary"
	}
	return "none"
}

// Result holds the scores of one batch. Reuse one Result per goroutine
// (per shard): its buffers are kept, so steady-state scoring allocates
// nothing. The zero value is ready to use.
type Result struct {
	// Scores holds one column per output (one per class for
	// multi:softprob): Scores[k][i] is score k of row i; NaN for rows with
	// SourceNone.
	Scores [][]float64
	// Source says, per row, who scored it.
	Source []Source
	// Version identifies the model behind SourcePrimary rows: the model
	// file's content hash or S3 ETag, or "sagemaker:" + endpoint and variant.
	Version string
	// FallbackVersion and CanaryVersion identify the models behind
	// SourceFallback and SourceCanary rows.
	FallbackVersion, CanaryVersion string
	// Err says why rows have SourceNone or SourceFallback; nil when every
	// row was scored by the primary.
	Err error
	// Shadow holds the challenger's scores for the same rows when a Shadow
	// scorer is used (champion/challenger); nil otherwise. Only the
	// champion's Scores should drive alerts.
	Shadow *Result

	n       int
	scratch Scratch
	cols    [][]float64 // feature column views in model order
	buf     [][]float64 // owned conversion buffers, one per feature
	aux     *Result     // fallback/challenger scratch result
	bind    binding
}

// Len is the number of rows in the result.
func (r *Result) Len() int { return r.n }

// VersionOf returns the version of the model that scored row i ("" if none).
func (r *Result) VersionOf(i int) string {
	switch r.Source[i] {
	case SourcePrimary:
		return r.Version
	case SourceFallback:
		return r.FallbackVersion
	case SourceCanary:
		return r.CanaryVersion
	}
	return ""
}

// Unscored appends the indices of rows nobody scored to dst.
func (r *Result) Unscored(dst []int) []int {
	for i, s := range r.Source[:r.n] {
		if s == SourceNone {
			dst = append(dst, i)
		}
	}
	return dst
}

// Count returns how many rows came from source s.
func (r *Result) Count(s Source) int {
	c := 0
	for _, x := range r.Source[:r.n] {
		if x == s {
			c++
		}
	}
	return c
}

// reset sizes the result for n rows and k outputs, keeping buffers, with
// every row unscored.
func (r *Result) reset(n, k int) {
	r.n = n
	if cap(r.Scores) < k {
		r.Scores = make([][]float64, k)
	}
	r.Scores = r.Scores[:k]
	for j := range r.Scores {
		if cap(r.Scores[j]) < n {
			r.Scores[j] = make([]float64, n, n+n/4)
		}
		r.Scores[j] = r.Scores[j][:n]
	}
	if cap(r.Source) < n {
		r.Source = make([]Source, n, n+n/4)
	}
	r.Source = r.Source[:n]
	clear(r.Source)
	r.Version, r.FallbackVersion, r.CanaryVersion, r.Err = "", "", "", nil
}

func (r *Result) fill(src Source) {
	for i := range r.Source {
		r.Source[i] = src
	}
}

func (r *Result) markUnscored(lo, hi int) {
	for k := range r.Scores {
		for i := lo; i < hi; i++ {
			r.Scores[k][i] = math.NaN()
		}
	}
	for i := lo; i < hi; i++ {
		r.Source[i] = SourceNone
	}
}

func (r *Result) auxResult() *Result {
	if r.aux == nil {
		r.aux = &Result{}
	}
	return r.aux
}
