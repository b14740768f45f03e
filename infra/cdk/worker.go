package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"
)

// The worker task's file layout. The streamscore image is distroless
// (no shell, no HTTP client), so an init container from HelperImage writes
// the rendered pipeline configurations to a task volume and copies its
// static busybox there for the health check to run.
const (
	configDir    = "/etc/streamscore"
	helperDir    = "/opt/streamscore"
	scratchDir   = "/tmp"
	opsListen    = "127.0.0.1:9464"
	healthzURL   = "http://" + opsListen + "/healthz"
	workerName   = "worker"
	initName     = "init"
	configEnvFmt = "STREAMSCORE_CONFIG_%s"
)

// dockerExcludes keep the worker image's build context to the sources,
// on top of the repository's .dockerignore: test binaries and this app
// (its cdk.out would otherwise be copied into its own asset).
var dockerExcludes = []string{"infra", "**/*.test", "**/*.prof", "lambda/bootstrap/bootstrap"}

// Worker is the streamscore worker service on ECS Fargate.
type Worker struct {
	Vpc            awsec2.Vpc
	Cluster        awsecs.Cluster
	Service        awsecs.FargateService
	TaskDefinition awsecs.FargateTaskDefinition
	TaskRole       awsiam.Role
	LogGroup       awslogs.LogGroup
	// Scaling scales the service between WorkerDesiredCount and
	// WorkerMaxCount tasks (scaling.go).
	Scaling awsecs.ScalableTaskCount
	// Configs maps pipeline name to its rendered configuration (with
	// CloudFormation tokens in it).
	Configs map[string]string
}

func newWorker(ss *Streamscore) (*Worker, error) {
	s, stack := ss.Settings, ss.Stack
	w := &Worker{Configs: map[string]string{}}

	// Private subnets with a NAT for the AWS APIs; S3 and DynamoDB, where
	// the bytes are, through free gateway endpoints.
	w.Vpc = awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(float64(s.NATGateways)),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("workers"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(20)},
		},
		GatewayEndpoints: &map[string]*awsec2.GatewayVpcEndpointOptions{
			"S3":       {Service: awsec2.GatewayVpcEndpointAwsService_S3()},
			"DynamoDB": {Service: awsec2.GatewayVpcEndpointAwsService_DYNAMODB()},
		},
	})
	// Flow logs of rejected traffic: the workers only call out on 443,
	// so a rejection is a misconfiguration or something to look into.
	w.Vpc.AddFlowLog(jsii.String("RejectedFlows"), &awsec2.FlowLogOptions{
		TrafficType: awsec2.FlowLogTrafficType_REJECT,
		Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(awslogs.NewLogGroup(stack, jsii.String("VpcFlowLogs"), &awslogs.LogGroupProps{
			Retention:     retention(s.LogRetentionDays),
			RemovalPolicy: removalPolicy(s),
		}), nil),
	})
	// The worker accepts no connections (its ops port is for the in-task
	// health check) and only speaks HTTPS out.
	sg := awsec2.NewSecurityGroup(stack, jsii.String("WorkerSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              w.Vpc,
		Description:      jsii.String("streamscore workers: no ingress, HTTPS egress to AWS APIs"),
		AllowAllOutbound: jsii.Bool(false),
	})
	sg.AddEgressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("AWS APIs and image registries"), nil)

	w.Cluster = awsecs.NewCluster(stack, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc: w.Vpc,
		// RunningTaskCount, for the alarm on fewer tasks than desired.
		ContainerInsightsV2:            awsecs.ContainerInsights_ENABLED,
		EnableFargateCapacityProviders: jsii.Bool(s.WorkerFargateSpot),
	})

	w.LogGroup = awslogs.NewLogGroup(stack, jsii.String("WorkerLogs"), &awslogs.LogGroupProps{
		Retention:     retention(s.LogRetentionDays),
		RemovalPolicy: removalPolicy(s),
	})

	w.TaskRole = awsiam.NewRole(stack, jsii.String("WorkerTaskRole"), &awsiam.RoleProps{
		Description: jsii.String("streamscore worker: exactly the calls the worker makes"),
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			// Only ECS tasks of this account may assume it (confused
			// deputy protection).
			Conditions: &map[string]any{
				"StringEquals": map[string]any{"aws:SourceAccount": stack.Account()},
				"ArnLike":      map[string]any{"aws:SourceArn": "arn:" + *stack.Partition() + ":ecs:" + *stack.Region() + ":" + *stack.Account() + ":*"},
			},
		}),
	})
	if err := grantWorker(ss, w.TaskRole); err != nil {
		return nil, err
	}

	cpuArch, platform := awsecs.CpuArchitecture_X86_64(), awsecrassets.Platform_LINUX_AMD64()
	if s.WorkerArchitecture == "arm64" {
		cpuArch, platform = awsecs.CpuArchitecture_ARM64(), awsecrassets.Platform_LINUX_ARM64()
	}
	w.TaskDefinition = awsecs.NewFargateTaskDefinition(stack, jsii.String("WorkerTask"), &awsecs.FargateTaskDefinitionProps{
		Cpu:            jsii.Number(float64(s.WorkerCPU)),
		MemoryLimitMiB: jsii.Number(float64(s.WorkerMemoryMiB)),
		TaskRole:       w.TaskRole,
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       cpuArch,
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
		Volumes: &[]*awsecs.Volume{
			{Name: jsii.String("config")},
			{Name: jsii.String("helper")},
			{Name: jsii.String("scratch")},
		},
	})

	// The configurations travel in the task definition itself, not in
	// SSM: a configuration change is a new task definition revision, so a
	// bad one is rolled back by the deployment circuit breaker together
	// with the tasks that failed on it.
	env := map[string]*string{}
	script := []string{"set -eu", "umask 022"}
	args := []string{"run"}
	for _, p := range ss.Pipelines {
		rendered, err := p.Render(ss.deployment(p))
		if err != nil {
			return nil, err
		}
		w.Configs[p.Name] = string(rendered)
		key := fmt.Sprintf(configEnvFmt, strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")))
		env[key] = jsii.String(string(rendered))
		file := configDir + "/" + p.Name + ".yaml"
		script = append(script, fmt.Sprintf(`printf '%%s\n' "$%s" > %s`, key, file))
		args = append(args, "--config", file)
	}
	args = append(args, "--listen", opsListen, "--spool-dir", scratchDir)
	script = append(script,
		"cp /bin/busybox "+helperDir+"/busybox",
		"chmod 0555 "+helperDir+"/busybox",
		// Fargate creates bind-mount volumes owned by root; the worker
		// runs as distroless' nonroot user and spools Parquet files here.
		"chmod 1777 "+scratchDir,
	)

	logging := func(prefix string) awsecs.LogDriver {
		return awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String(prefix),
			LogGroup:     w.LogGroup,
			// A full log buffer must not block the worker's stderr (and
			// with it the pipeline); the buffer is generous instead.
			Mode:          awsecs.AwsLogDriverMode_NON_BLOCKING,
			MaxBufferSize: awscdk.Size_Mebibytes(jsii.Number(25)),
		})
	}
	initC := w.TaskDefinition.AddContainer(jsii.String(initName), &awsecs.ContainerDefinitionOptions{
		Image:                  awsecs.ContainerImage_FromRegistry(jsii.String(s.HelperImage), nil),
		Essential:              jsii.Bool(false),
		Command:                jsii.Strings("sh", "-c", strings.Join(script, "\n")),
		Environment:            &env,
		ReadonlyRootFilesystem: jsii.Bool(true),
		Logging:                logging(initName),
	})
	initC.AddMountPoints(
		&awsecs.MountPoint{SourceVolume: jsii.String("config"), ContainerPath: jsii.String(configDir), ReadOnly: jsii.Bool(false)},
		&awsecs.MountPoint{SourceVolume: jsii.String("helper"), ContainerPath: jsii.String(helperDir), ReadOnly: jsii.Bool(false)},
		&awsecs.MountPoint{SourceVolume: jsii.String("scratch"), ContainerPath: jsii.String(scratchDir), ReadOnly: jsii.Bool(false)},
	)

	exclude := jsii.Strings(dockerExcludes...)
	worker := w.TaskDefinition.AddContainer(jsii.String(workerName), &awsecs.ContainerDefinitionOptions{
		// Built from the repository's Dockerfile at deploy time; synth
		// only fingerprints and stages the build context.
		Image: awsecs.ContainerImage_FromAsset(jsii.String(filepath.Clean(s.RepoRoot)), &awsecs.AssetImageProps{
			Exclude:  exclude,
			Platform: platform,
		}),
		Essential:              jsii.Bool(true),
		Command:                jsii.Strings(args...),
		ReadonlyRootFilesystem: jsii.Bool(true),
		Environment: &map[string]*string{
			"AWS_REGION": stack.Region(),
		},
		HealthCheck: &awsecs.HealthCheck{
			// /healthz, not /readyz: a worker holding no lease (more
			// workers than shards) is healthy and must not be replaced.
			Command:     jsii.Strings("CMD", helperDir+"/busybox", "wget", "-q", "-T", "3", "-O", "/dev/null", healthzURL),
			Interval:    awscdk.Duration_Seconds(jsii.Number(15)),
			Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
			Retries:     jsii.Number(3),
			StartPeriod: awscdk.Duration_Seconds(jsii.Number(60)),
		},
		// SIGTERM drains: finish the batch, flush sinks, checkpoint, hand
		// leases over. Fargate allows at most 120 s before SIGKILL.
		StopTimeout: awscdk.Duration_Seconds(jsii.Number(120)),
		Logging:     logging(workerName),
	})
	worker.AddMountPoints(
		&awsecs.MountPoint{SourceVolume: jsii.String("config"), ContainerPath: jsii.String(configDir), ReadOnly: jsii.Bool(true)},
		&awsecs.MountPoint{SourceVolume: jsii.String("helper"), ContainerPath: jsii.String(helperDir), ReadOnly: jsii.Bool(true)},
		&awsecs.MountPoint{SourceVolume: jsii.String("scratch"), ContainerPath: jsii.String(scratchDir), ReadOnly: jsii.Bool(false)},
	)
	worker.AddContainerDependencies(&awsecs.ContainerDependency{Container: initC, Condition: awsecs.ContainerDependencyCondition_SUCCESS})

	w.Service = awsecs.NewFargateService(stack, jsii.String("WorkerService"), &awsecs.FargateServiceProps{
		CapacityProviderStrategies: capacityStrategy(s),
		Cluster:                    w.Cluster,
		TaskDefinition:             w.TaskDefinition,
		DesiredCount:               jsii.Number(float64(s.WorkerDesiredCount)),
		// New tasks start before old ones stop; the old ones then hand
		// their leases over on SIGTERM, so no shard waits for expiry.
		MinHealthyPercent:    jsii.Number(100),
		MaxHealthyPercent:    jsii.Number(200),
		CircuitBreaker:       &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		SecurityGroups:       &[]awsec2.ISecurityGroup{sg},
		VpcSubnets:           &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
		AssignPublicIp:       jsii.Bool(false),
		PlatformVersion:      awsecs.FargatePlatformVersion_LATEST,
		EnableExecuteCommand: jsii.Bool(false),
		PropagateTags:        awsecs.PropagatedTagSource_SERVICE,
	})
	w.Scaling = autoscale(ss, w.Service)
	return w, nil
}

// removalPolicy is what deleting the stack does to data and logs:
// RetainData keeps them.
func removalPolicy(s Settings) awscdk.RemovalPolicy {
	if s.RetainData {
		return awscdk.RemovalPolicy_RETAIN
	}
	return awscdk.RemovalPolicy_DESTROY
}

// retention maps days to the nearest CloudWatch Logs retention at or
// above it.
func retention(days int) awslogs.RetentionDays {
	for _, r := range []struct {
		d int
		r awslogs.RetentionDays
	}{
		{1, awslogs.RetentionDays_ONE_DAY}, {3, awslogs.RetentionDays_THREE_DAYS}, {5, awslogs.RetentionDays_FIVE_DAYS},
		{7, awslogs.RetentionDays_ONE_WEEK}, {14, awslogs.RetentionDays_TWO_WEEKS}, {30, awslogs.RetentionDays_ONE_MONTH},
		{60, awslogs.RetentionDays_TWO_MONTHS}, {90, awslogs.RetentionDays_THREE_MONTHS}, {180, awslogs.RetentionDays_SIX_MONTHS},
		{365, awslogs.RetentionDays_ONE_YEAR}, {731, awslogs.RetentionDays_TWO_YEARS}, {1827, awslogs.RetentionDays_FIVE_YEARS},
		{3653, awslogs.RetentionDays_TEN_YEARS},
	} {
		if days <= r.d {
			return r.r
		}
	}
	return awslogs.RetentionDays_INFINITE
}
