// Package scorer scores Arrow feature batches, in process or with a
// SageMaker real-time endpoint, and serves models over SageMaker's
// inference container contract.
//
// The pipeline consumes one small interface:
//
//	type Scorer interface {
//		Score(ctx context.Context, rec arrow.RecordBatch, res *Result) error
//		Outputs() int
//	}
//
// rec holds one row per entity window; feature columns are matched to the
// model by name and may be float64, float32, int64 or int32, with nulls as
// missing values. Score fills res (which the caller keeps, one per shard, so
// steady-state scoring allocates nothing) with a score column per output
// (one per class for multi:softprob), who scored each row (primary,
// fallback, canary or nobody) and the model version behind it.
//
// Implementations:
//
//   - Embedded: an XGBoost (JSON or UBJSON, 1.x to 3.x, or SageMaker's
//     model.tar.gz) or linear model in process. Trees are stored complete
//     and walked without data-dependent branches, several rows or trees at a
//     time, comparing in float32 exactly as XGBoost does; margins are summed
//     in float32 in XGBoost's order, so scores match XGBoost's to the last
//     bit of the margin. A Watcher hot-reloads the model file or S3 object;
//     the swap happens between batches.
//   - Remote: a SageMaker endpoint called with text/csv, in requests up to
//     6 MB, with a concurrency limit, per-call timeout and jittered
//     retries, behind a sony/gobreaker circuit breaker. While the breaker is
//     open, rows are scored by the fallback (an Embedded) or handed back
//     unscored for the dead-letter sink.
//   - Shadow and Canary: champion/challenger.
//
// Model.Contributions and Model.Explain attribute an embedded model's
// margin for one row to its inputs (weight times value for linear models;
// for trees, XGBoost's approx_contribs path attribution, bit for bit), so
// an alert can say which inputs drove its score.
//
// NewHandler serves a model as a SageMaker container (GET /ping, POST
// /invocations, and the runtime API path the AWS SDK calls).
//
// Use CheckSchema (or NewEmbedded with the batch schema) at start-up so a
// feature the model needs but the batch lacks fails there, not while
// scoring.
package scorer
