package main

import (
	"strings"
	"testing"
)

// TestAlarms: each alarm watches the right metric with the right
// statistic and threshold, and both firing and clearing go to the alert
// topic.
func TestAlarms(t *testing.T) {
	s := defaults(t)
	topic := `[{"Ref":"` + s.idOf(t, "AWS::SNS::Topic", "Alerts") + `"}]`
	type want struct {
		ns, metric, stat, op, missing string
		threshold                     float64
		dims                          string
	}
	alarms := map[string]want{
		"AlarmIteratorAgefactorysensors": {"AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "Maximum", "GreaterThanThreshold", "breaching", 60000,
			`[{"Name":"StreamName","Value":{"Ref":"` + s.idOf(t, "AWS::Kinesis::Stream", "Streamfactorysensors") + `"}}]`},
		"AlarmIteratorAgeappevents": {"AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "Maximum", "GreaterThanThreshold", "breaching", 60000,
			`[{"Name":"StreamName","Value":{"Ref":"` + s.idOf(t, "AWS::Kinesis::Stream", "Streamappevents") + `"}}]`},
		"AlarmDeadLetters": {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "GreaterThanThreshold", "notBreaching", 0,
			`[{"Name":"QueueName","Value":{"Fn::GetAtt":["` + s.idOf(t, "AWS::SQS::Queue", "DeadLetters") + `","QueueName"]}}]`},
		"AlarmWorkerTasks": {"ECS/ContainerInsights", "RunningTaskCount", "Minimum", "LessThanThreshold", "breaching", 2,
			`[{"Name":"ClusterName","Value":{"Ref":"` + s.idOf(t, "AWS::ECS::Cluster", "Cluster") + `"}},{"Name":"ServiceName","Value":{"Fn::GetAtt":["` + s.idOf(t, "AWS::ECS::Service", "WorkerService") + `","Name"]}}]`},
		"AlarmLoginErrors": {"AWS/Lambda", "Errors", "Sum", "GreaterThanThreshold", "notBreaching", 0,
			`[{"Name":"FunctionName","Value":{"Ref":"` + s.idOf(t, "AWS::Lambda::Function", "Login") + `"}}]`},
		"AlarmLoginIteratorAge": {"AWS/Lambda", "IteratorAge", "Maximum", "GreaterThanThreshold", "notBreaching", 60000,
			`[{"Name":"FunctionName","Value":{"Ref":"` + s.idOf(t, "AWS::Lambda::Function", "Login") + `"}}]`},
		"AlarmLoginFailedBatches": {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "GreaterThanThreshold", "notBreaching", 0,
			`[{"Name":"QueueName","Value":{"Fn::GetAtt":["` + s.idOf(t, "AWS::SQS::Queue", "LoginFailures") + `","QueueName"]}}]`},
	}
	for prefix, w := range alarms {
		a := props(s.resources("AWS::CloudWatch::Alarm")[s.idOf(t, "AWS::CloudWatch::Alarm", prefix)])
		got := want{a["Namespace"].(string), a["MetricName"].(string), a["Statistic"].(string), a["ComparisonOperator"].(string),
			a["TreatMissingData"].(string), a["Threshold"].(float64), compact(a["Dimensions"])}
		if got != w {
			t.Errorf("%s:\n got %+v\nwant %+v", prefix, got, w)
		}
		if compact(a["AlarmActions"]) != topic || compact(a["OKActions"]) != topic {
			t.Errorf("%s: actions %s / %s, want %s", prefix, compact(a["AlarmActions"]), compact(a["OKActions"]), topic)
		}
	}
	// The threshold is a context setting.
	c := synth(t, map[string]any{"iteratorAgeAlarmMillis": 120000})
	for _, prefix := range []string{"AlarmIteratorAgefactorysensors", "AlarmLoginIteratorAge"} {
		if th := props(c.resources("AWS::CloudWatch::Alarm")[c.idOf(t, "AWS::CloudWatch::Alarm", prefix)])["Threshold"]; th != 120000.0 {
			t.Errorf("%s threshold %v with iteratorAgeAlarmMillis=120000", prefix, th)
		}
	}
	if d := props(s.resources("AWS::CloudWatch::Alarm")[s.idOf(t, "AWS::CloudWatch::Alarm", "AlarmIteratorAgefactorysensors")])["AlarmDescription"].(string); !strings.Contains(d, "factory-sensors") {
		t.Errorf("description %q does not name the stream", d)
	}
}
