// Package lambda is the login-event AWS Lambda function: when a user logs
// in, it reads the user's newest windowed features from the online feature
// table that the pipeline's sinks.FeatureTable keeps, scores them with the
// same embedded model (package scorer), and answers with the churn risk
// and the inputs that drove it.
//
// It takes two invocation shapes, told apart by the payload:
//
//   - a login event sent directly (synchronous Invoke from an app's
//     backend): the answer is a Response; a malformed event or one of
//     another type is an *EventError naming the field;
//   - a batch from a Kinesis event source mapping (an object with
//     "Records"): KPL aggregates are split as the pipeline's consumer
//     splits them (consumer.Deaggregator), other event types are skipped,
//     high-risk logins are published to an SNS topic as pipeline-shaped
//     alerts (sinks.Alerts.Notify), poison records go to the dead-letter
//     queue (sinks.DeadLetter), and the answer is an
//     events.KinesisEventResponse that hands back the first record that
//     could not be completed, with ReportBatchItemFailures semantics.
//
// Every invocation writes one Embedded Metric Format line to stdout. The
// configuration comes from environment variables (ConfigFromEnv), checked
// at cold start, when the model is loaded once. The binary is
// lambda/bootstrap; docs/lambda.md has the deployment, the IAM permissions
// and the failure semantics.
package lambda
