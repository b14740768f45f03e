package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/jsii-runtime-go"
)

// newAlarms creates the alarms a Kinesis consumer's on-call needs, each
// notifying the alert topic when it fires and when it clears:
//
//   - per stream the worker reads: the age of the oldest record it fetched
//     (GetRecords.IteratorAgeMilliseconds, or with enhanced fan-out the
//     consumer's SubscribeToShardEvent.MillisBehindLatest) above the
//     threshold for 3 of 5 minutes. Missing data breaches: a worker that
//     polls emits the metric every minute even when idle, so silence means
//     nobody is reading;
//   - dead letters waiting in the queue (any);
//   - fewer running worker tasks than desired for 5 minutes (Container
//     Insights' RunningTaskCount; missing data breaches);
//   - the login Lambda's errors, iterator age and batches it gave up on.
func newAlarms(ss *Streamscore) {
	s := ss.Settings
	action := awscloudwatchactions.NewSnsAction(ss.Topic)
	alarm := func(id, desc string, props *awscloudwatch.AlarmProps) {
		props.AlarmDescription = jsii.String(desc)
		a := awscloudwatch.NewAlarm(ss.Stack, jsii.String("Alarm-"+id), props)
		a.AddAlarmAction(action)
		a.AddOkAction(action)
	}
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))
	threshold := jsii.Number(float64(s.IteratorAgeAlarmMillis))

	lag := lagMetrics(ss)
	for _, name := range sortedKeys(lag) {
		metric := lag[name]
		alarm("IteratorAge-"+name, fmt.Sprintf("streamscore is more than %d ms behind on %s (or not reading it)", s.IteratorAgeAlarmMillis, name), &awscloudwatch.AlarmProps{
			Metric:             metric,
			Threshold:          threshold,
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(5),
			DatapointsToAlarm:  jsii.Number(3),
			TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
		})
	}

	alarm("DeadLetters", "dead letters are waiting: undecodable, late or unscorable records (reason attribute)", &awscloudwatch.AlarmProps{
		Metric:             ss.DeadLetters.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minute}),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})

	alarm("WorkerTasks", fmt.Sprintf("fewer than %d streamscore workers running", s.WorkerDesiredCount), &awscloudwatch.AlarmProps{
		Metric: awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:  jsii.String("ECS/ContainerInsights"),
			MetricName: jsii.String("RunningTaskCount"),
			DimensionsMap: &map[string]*string{
				"ClusterName": ss.Worker.Cluster.ClusterName(),
				"ServiceName": ss.Worker.Service.ServiceName(),
			},
			Statistic: jsii.String("Minimum"),
			Period:    minute,
		}),
		Threshold:          jsii.Number(float64(s.WorkerDesiredCount)),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(5),
		TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
	})

	if l := ss.Login; l != nil {
		alarm("LoginErrors", "the login Lambda failed invocations (Kinesis retries, bisects, then gives the batch up)", &awscloudwatch.AlarmProps{
			Metric:             l.Function.MetricErrors(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes}),
			Threshold:          jsii.Number(0),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm("LoginIteratorAge", fmt.Sprintf("the login Lambda is more than %d ms behind on %s", s.IteratorAgeAlarmMillis, s.LoginStream), &awscloudwatch.AlarmProps{
			Metric: l.Function.Metric(jsii.String("IteratorAge"), &awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minute}),
			// Lambda emits IteratorAge only with invocations: an idle
			// stream is not an alarm.
			Threshold:          threshold,
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(5),
			DatapointsToAlarm:  jsii.Number(3),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm("LoginFailedBatches", "the login Lambda gave up on Kinesis batches: their shard and sequence ranges are in the failure queue", &awscloudwatch.AlarmProps{
			Metric:             l.Failures.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minute}),
			Threshold:          jsii.Number(0),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
	}
}

// lagMetrics maps each stream the workers read to how far behind they are
// on it, per minute: the age of the oldest record fetched
// (GetRecords.IteratorAgeMilliseconds, Maximum), or with enhanced fan-out
// the consumer's SubscribeToShardEvent.MillisBehindLatest. The lag alarms
// and autoscaling watch the same metrics.
func lagMetrics(ss *Streamscore) map[string]awscloudwatch.Metric {
	fanOut := map[string]string{} // stream -> fan-out consumer name
	read := map[string]bool{}
	for _, p := range ss.Pipelines {
		for _, st := range p.Streams {
			read[st.Name] = true
			if p.FanOut {
				fanOut[st.Name] = p.FanOutConsumer
			}
		}
	}
	out := map[string]awscloudwatch.Metric{}
	for name := range read {
		props := &awscloudwatch.MetricProps{
			Namespace:     jsii.String("AWS/Kinesis"),
			MetricName:    jsii.String("GetRecords.IteratorAgeMilliseconds"),
			DimensionsMap: &map[string]*string{"StreamName": ss.Streams[name].StreamName()},
			Statistic:     jsii.String("Maximum"),
			Period:        awscdk.Duration_Minutes(jsii.Number(1)),
		}
		if consumer, ok := fanOut[name]; ok {
			props.MetricName = jsii.String("SubscribeToShardEvent.MillisBehindLatest")
			props.DimensionsMap = &map[string]*string{"StreamName": ss.Streams[name].StreamName(), "ConsumerName": jsii.String(consumer)}
		}
		out[name] = awscloudwatch.NewMetric(props)
	}
	return out
}
