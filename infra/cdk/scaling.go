package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/jsii-runtime-go"
)

// Cooldowns of the worker's scaling. Scaling in moves leases: the tasks
// that stay take the stopped one's shards over after it drains, so it is
// slow; scaling out is quick, since a backlog grows while we wait.
const (
	scaleOutCooldown = 2 * 60
	scaleInCooldown  = 10 * 60
)

// autoscale lets the worker service run between WorkerDesiredCount and
// WorkerMaxCount tasks, on two signals:
//
//   - CPU: target tracking at WorkerCPUTarget percent, which adds tasks
//     under load and is the only policy that removes them;
//   - lag: step scaling on the largest iterator age over the streams the
//     workers read (the lag alarms' metrics, lagMetrics), adding one task
//     from WorkerScaleOutLagMillis and two from four times that, for 3 of
//     5 minutes. A worker starved of shards uses little CPU, so lag alone
//     catches a backlog that CPU would not. It never scales in: a drained
//     backlog means low lag whatever the load, and CPU decides.
//
// Where both policies act at once, Application Auto Scaling takes the
// larger capacity.
func autoscale(ss *Streamscore, svc awsecs.FargateService) awsecs.ScalableTaskCount {
	s := ss.Settings
	scaling := svc.AutoScaleTaskCount(&awsapplicationautoscaling.EnableScalingProps{
		MinCapacity: jsii.Number(float64(s.WorkerDesiredCount)),
		MaxCapacity: jsii.Number(float64(s.WorkerMaxCount)),
	})
	seconds := func(n int) awscdk.Duration { return awscdk.Duration_Seconds(jsii.Number(float64(n))) }
	scaling.ScaleOnCpuUtilization(jsii.String("Cpu"), &awsecs.CpuUtilizationScalingProps{
		TargetUtilizationPercent: jsii.Number(float64(s.WorkerCPUTarget)),
		ScaleOutCooldown:         seconds(scaleOutCooldown),
		ScaleInCooldown:          seconds(scaleInCooldown),
	})
	lag := float64(s.WorkerScaleOutLagMillis)
	scaling.ScaleOnMetric(jsii.String("IteratorAge"), &awsapplicationautoscaling.BasicStepScalingPolicyProps{
		Metric: maxLag(ss),
		ScalingSteps: &[]*awsapplicationautoscaling.ScalingInterval{
			{Upper: jsii.Number(lag), Change: jsii.Number(0)},
			{Lower: jsii.Number(lag), Change: jsii.Number(1)},
			{Lower: jsii.Number(4 * lag), Change: jsii.Number(2)},
		},
		AdjustmentType:        awsapplicationautoscaling.AdjustmentType_CHANGE_IN_CAPACITY,
		Cooldown:              seconds(scaleOutCooldown),
		MetricAggregationType: awsapplicationautoscaling.MetricAggregationType_MAXIMUM,
		EvaluationPeriods:     jsii.Number(5),
		DatapointsToAlarm:     jsii.Number(3),
	})
	return scaling
}

// maxLag is the largest lag over the streams the workers read: the one
// stream's metric, or the per-minute maximum of all of them.
func maxLag(ss *Streamscore) awscloudwatch.IMetric {
	lag := lagMetrics(ss)
	names := sortedKeys(lag)
	if len(names) == 1 {
		return lag[names[0]]
	}
	using := map[string]awscloudwatch.IMetric{}
	ids := ""
	for i, name := range names {
		id := fmt.Sprintf("lag%d", i)
		using[id] = lag[name]
		if i > 0 {
			ids += ", "
		}
		ids += id
	}
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String("MAX([" + ids + "])"),
		UsingMetrics: &using,
		Label:        jsii.String("largest iterator age of the streams the workers read"),
		Period:       awscdk.Duration_Minutes(jsii.Number(1)),
	})
}

// capacityStrategy is the service's capacity providers: none (plain
// Fargate) unless WorkerFargateSpot, then the first WorkerDesiredCount
// tasks on FARGATE and every task above them on FARGATE_SPOT.
func capacityStrategy(s Settings) *[]*awsecs.CapacityProviderStrategy {
	if !s.WorkerFargateSpot {
		return nil
	}
	return &[]*awsecs.CapacityProviderStrategy{
		{CapacityProvider: jsii.String("FARGATE"), Base: jsii.Number(float64(s.WorkerDesiredCount)), Weight: jsii.Number(0)},
		{CapacityProvider: jsii.String("FARGATE_SPOT"), Weight: jsii.Number(1)},
	}
}
