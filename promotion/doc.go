// Package promotion decides, on evidence, when a scorer's challenger
// replaces its champion, records the decision once and durably, and lets
// every worker follow it (docs/flywheel.md, "Promotion").
//
// Three parts, usable apart:
//   - Policy and Evaluate (policy.go, evaluate.go): a pure judgement of
//     the challenger's model-quality statistics against the champion's on
//     the same labelled rows: enough rows, better by a margin on one
//     metric, inside absolute guardrails. The verdict's reason is one
//     sentence with the numbers, for alerts and the decision's record.
//   - Store (store.go, item.go): one DynamoDB item per pipeline and scorer
//     holding the champion, the previous champion, a generation, who,
//     when and why, and the last HistoryLimit decisions. Promote and
//     Rollback are conditional writes on the generation the caller read:
//     of two racing writers exactly one wins, the other gets a
//     *ConflictError and writes nothing. Current is a strongly consistent
//     read.
//   - Follower (follower.go): polls Current and hands each new generation
//     to a callback, which swaps the model; every worker converges on the
//     decision within one interval.
//
// The package makes no decision about models it cannot name: a Model is
// the configuration's key plus the path, version and digest it had when
// promoted.
package promotion
