// Package promotion decides, on evidence, when a scorer's challenger
// replaces its champion, and what a decision is; every worker follows the
// decision (docs/flywheel.md, "Promotion").
//
// Its parts:
//   - Policy and Evaluate (policy.go, evaluate.go): a pure judgement of
//     the challenger's model-quality statistics against the champion's on
//     the same labelled rows: enough rows, better by a margin on one
//     metric, inside absolute guardrails. The verdict's reason is one
//     sentence with the numbers, for alerts and the decision's record.
//   - Model, Entry, Decision and Next (decision.go): what a decision
//     records (champion, previous champion, generation, who, when, why)
//     and how one follows another; the errors of a lost race
//     (*ConflictError) and of a decision that changes nothing.
//   - Follower (follower.go): polls a Source and hands each new
//     generation to a callback, which swaps the model; every worker
//     converges on the decision within one interval.
//
// Package promotion/dynamo stores decisions in DynamoDB with conditional
// writes. It is apart so that this package, which the configuration
// validates policies with, carries no AWS dependency.
package promotion
