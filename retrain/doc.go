// Package retrain closes the flywheel's loop: it decides, from the
// monitors' period verdicts, when a model should be retrained, and tells
// the world on EventBridge (docs/flywheel.md, "Retraining trigger").
//
// Its parts:
//   - Trigger (trigger.go): a pure state machine fed one verdict per
//     monitored window (drift) or scorer (model quality) and period. It
//     asks for retraining when a window drifted in N consecutive periods
//     or a scorer's model violated its quality constraints in M
//     consecutive periods, then stays quiet for a cooldown of event time,
//     so one bad day asks once. Its state is a few periods per window and
//     scorer; it does no I/O and reads no clock.
//   - The events (event.go, evidence.go): the Detail types of the
//     flywheel's EventBridge events (source "streamscore"; detail types
//     "Retraining Requested", "Model Promoted", "Model Rolled Back"), one
//     versioned schema home for all of them, described by
//     schema/events-v1.schema.json.
//   - Publisher (publish.go): PutEvents with retries for throttling and
//     server errors, each refused entry reported as an error naming it.
//
// The package does not read S3 or the configuration: the caller (the
// monitors' reducers) feeds verdicts it already has and publishes what the
// Trigger decides.
package retrain
