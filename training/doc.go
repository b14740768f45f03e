// Package training is the local training step of the retraining loop
// (docs/flywheel.md, "The training step"): given a "Retraining Requested"
// event's detail and the pipeline's configuration, it builds the labelled
// training set from what the S3 sink and the ground-truth sink wrote,
// trains a model with examples/models/train.py, and publishes it under an
// immutable key and as the scorer's challenger.
//
// What it owns:
//   - The training set (dataset.go, BuildSet): the scorer's results in the
//     request's event-time range joined to the ground truth by the quality
//     monitor's rules, read through monitor/dataset, as a CSV of the
//     window features and a label.
//   - The run (run.go, Run): train.py on that CSV, the model's upload and
//     its copy to the challenger's path.
//   - The Step Functions activity worker (worker.go, Worker): polls an
//     activity, runs each task's request, and reports success or failure.
//
// Memory is bounded by the labels and the predictions of the range, not
// by the files' sizes: the labels are held (one map entry per labelled
// id, one time per positive label by entity) and one entry per distinct
// labelled result_id of the range (its id and write time: about 130
// bytes, measured with a million ids), while the results themselves
// stream, one Parquet batch at a time, from local copies of the files to
// the CSV on disk (docs/flywheel.md, "The training step").
package training
