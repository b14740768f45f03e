package main

import (
	"strings"
	"testing"
)

// TestWorkerAutoscaling: the service scales between workerDesiredCount
// and workerMaxCount on CPU (target tracking, the only policy that scales
// in) and on the largest iterator age of the streams it reads (step
// scaling out only: +1 from 30 s, +2 from 120 s, for 3 of 5 minutes).
func TestWorkerAutoscaling(t *testing.T) {
	s := defaults(t)
	target := props(s.resources("AWS::ApplicationAutoScaling::ScalableTarget")[s.idOf(t, "AWS::ApplicationAutoScaling::ScalableTarget", "WorkerServiceTaskCountTarget")])
	if target["MinCapacity"] != 2.0 || target["MaxCapacity"] != 8.0 || target["ScalableDimension"] != "ecs:service:DesiredCount" ||
		!strings.Contains(compact(target["ResourceId"]), s.idOf(t, "AWS::ECS::Service", "WorkerService")) {
		t.Errorf("scalable target %s", compact(target))
	}
	cpu := props(s.resources("AWS::ApplicationAutoScaling::ScalingPolicy")[s.idOf(t, "AWS::ApplicationAutoScaling::ScalingPolicy", "WorkerServiceTaskCountTargetCpu")])
	if got := compact(cpu["TargetTrackingScalingPolicyConfiguration"]); got != `{"PredefinedMetricSpecification":{"PredefinedMetricType":"ECSServiceAverageCPUUtilization"},"ScaleInCooldown":600,"ScaleOutCooldown":120,"TargetValue":60}` {
		t.Errorf("CPU policy %s", got)
	}
	policies := s.resources("AWS::ApplicationAutoScaling::ScalingPolicy")
	if len(policies) != 2 {
		t.Errorf("%d scaling policies, want CPU and lag (no lag scale-in policy)", len(policies))
	}
	step := props(policies[s.idOf(t, "AWS::ApplicationAutoScaling::ScalingPolicy", "WorkerServiceTaskCountTargetIteratorAgeUpperPolicy")])
	if got := compact(step["StepScalingPolicyConfiguration"]); got != `{"AdjustmentType":"ChangeInCapacity","Cooldown":120,"MetricAggregationType":"Maximum","StepAdjustments":[{"MetricIntervalLowerBound":0,"MetricIntervalUpperBound":90000,"ScalingAdjustment":1},{"MetricIntervalLowerBound":90000,"ScalingAdjustment":2}]}` {
		t.Errorf("lag policy %s", got)
	}
	alarm := props(s.resources("AWS::CloudWatch::Alarm")[s.idOf(t, "AWS::CloudWatch::Alarm", "WorkerServiceTaskCountTargetIteratorAgeUpperAlarm")])
	if alarm["Threshold"] != 30000.0 || alarm["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || alarm["EvaluationPeriods"] != 5.0 || alarm["DatapointsToAlarm"] != 3.0 {
		t.Errorf("lag alarm threshold %v %v, %v of %v", alarm["Threshold"], alarm["ComparisonOperator"], alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"])
	}
	metrics := compact(alarm["Metrics"])
	for _, want := range []string{
		`"Expression":"MAX([lag0, lag1])"`,
		`{"Dimensions":[{"Name":"StreamName","Value":{"Ref":"` + s.idOf(t, "AWS::Kinesis::Stream", "Streamappevents") + `"}}],"MetricName":"GetRecords.IteratorAgeMilliseconds","Namespace":"AWS/Kinesis"}`,
		`{"Dimensions":[{"Name":"StreamName","Value":{"Ref":"` + s.idOf(t, "AWS::Kinesis::Stream", "Streamfactorysensors") + `"}}],"MetricName":"GetRecords.IteratorAgeMilliseconds","Namespace":"AWS/Kinesis"}`,
		`"Stat":"Maximum"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("lag alarm metrics %s lack %s", metrics, want)
		}
	}
	// Plain Fargate by default.
	svc := props(s.resources("AWS::ECS::Service")[s.idOf(t, "AWS::ECS::Service", "WorkerService")])
	if svc["LaunchType"] != "FARGATE" || svc["CapacityProviderStrategy"] != nil {
		t.Errorf("default service launch type %v, strategy %s", svc["LaunchType"], compact(svc["CapacityProviderStrategy"]))
	}
}

// TestFargateSpot: with workerFargateSpot the first workerDesiredCount
// tasks stay on Fargate and every task scaling adds runs on Fargate Spot;
// the cluster has both capacity providers. With fan-out, the lag the
// workers scale on is each consumer's MillisBehindLatest.
func TestFargateSpot(t *testing.T) {
	s := loop(t)
	svc := props(s.resources("AWS::ECS::Service")[s.idOf(t, "AWS::ECS::Service", "WorkerService")])
	if got := compact(svc["CapacityProviderStrategy"]); got != `[{"Base":2,"CapacityProvider":"FARGATE","Weight":0},{"CapacityProvider":"FARGATE_SPOT","Weight":1}]` || svc["LaunchType"] != nil {
		t.Errorf("strategy %s, launch type %v", got, svc["LaunchType"])
	}
	var providers []string
	for _, r := range s.resources("AWS::ECS::ClusterCapacityProviderAssociations") {
		providers = append(providers, compact(props(r)["CapacityProviders"]))
	}
	if len(providers) != 1 || providers[0] != `["FARGATE","FARGATE_SPOT"]` {
		t.Errorf("cluster capacity providers %v", providers)
	}
	alarm := compact(props(s.resources("AWS::CloudWatch::Alarm")[s.idOf(t, "AWS::CloudWatch::Alarm", "WorkerServiceTaskCountTargetIteratorAgeUpperAlarm")])["Metrics"])
	if strings.Count(alarm, `"MetricName":"SubscribeToShardEvent.MillisBehindLatest"`) != 2 || !strings.Contains(alarm, `{"Name":"ConsumerName","Value":"factory-reader"}`) ||
		!strings.Contains(alarm, `"Expression":"MAX([lag0, lag1, lag2])"`) {
		t.Errorf("lag metrics with fan-out: %s", alarm)
	}
}
