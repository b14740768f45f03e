package main

import (
	"slices"

	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsathena"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsglue"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// newResultsBucket is the bucket of the Parquet results, the large dead
// letters, the models (retrained ones too), the drift and quality
// monitors' files and baselines, the ground truth, the training script,
// and Athena's query results: private, SSE-S3 (so readers and writers
// need no KMS grant), TLS only, with lifecycle rules per prefix and
// server access logs to a bucket of their own, kept LogRetentionDays.
// Models, baselines and the training script have no expiry.
func newResultsBucket(scope constructs.Construct, s Settings, removal awscdk.RemovalPolicy, pipelines []*Pipeline) awss3.Bucket {
	days := func(n int) awscdk.Duration { return awscdk.Duration_Days(jsii.Number(float64(n))) }
	rules := []*awss3.LifecycleRule{
		{
			// The S3 sink uploads files above 32 MiB in parts; a
			// worker killed mid-upload leaves parts that cost money
			// until aborted.
			Id:                                  jsii.String("abort-incomplete-uploads"),
			AbortIncompleteMultipartUploadAfter: days(7),
		},
		{
			Id:          jsii.String("results"),
			Prefix:      jsii.String(ResultsPrefix),
			Transitions: &[]*awss3.Transition{{StorageClass: awss3.StorageClass_INTELLIGENT_TIERING(), TransitionAfter: days(s.ResultsTransitionDays)}},
			Expiration:  days(s.ResultsExpirationDays),
		},
		{
			Id:         jsii.String("dead-letters"),
			Prefix:     jsii.String(DeadLetterPrefix),
			Expiration: days(s.DeadLetterExpirationDays),
		},
		{
			Id:         jsii.String("athena-results"),
			Prefix:     jsii.String(AthenaPrefix),
			Expiration: days(30),
		},
	}
	if slices.ContainsFunc(pipelines, func(p *Pipeline) bool { return p.Monitored() || len(p.Quality) > 0 }) {
		// A period's statistics and verdict describe results and live as
		// long as they do (until then `monitor check` can remake them from
		// the results). Expiry only: a window's files are a few MB per
		// period at most.
		rules = append(rules, &awss3.LifecycleRule{
			Id:         jsii.String("monitoring"),
			Prefix:     jsii.String(MonitoringPrefix),
			Expiration: days(s.ResultsExpirationDays),
		})
	}
	if slices.ContainsFunc(pipelines, func(p *Pipeline) bool { return p.Labels != nil }) {
		// Labels are training data for the results they judge: they
		// move and expire with them.
		rules = append(rules, &awss3.LifecycleRule{
			Id:          jsii.String("groundtruth"),
			Prefix:      jsii.String(GroundTruthPrefix),
			Transitions: &[]*awss3.Transition{{StorageClass: awss3.StorageClass_INTELLIGENT_TIERING(), TransitionAfter: days(s.ResultsTransitionDays)}},
			Expiration:  days(s.ResultsExpirationDays),
		})
	}
	// The workers' parts of each period (a subtree of their own,
	// pipeline/monitor_io.go) are merged into the verdict within minutes;
	// they are kept a month for offline re-checks, then go.
	for _, p := range pipelines {
		if !p.Monitored() {
			continue
		}
		for _, w := range p.Monitor.Windows {
			rules = append(rules, &awss3.LifecycleRule{
				Id:         jsii.String("monitor-parts-" + p.Name + "-" + w.Window),
				Prefix:     jsii.String(MonitorPartsPrefix(p.Name, w.Window)),
				Expiration: days(monitorPartsDays),
			})
		}
	}
	// Server access logs: who read or wrote which object, for audits of
	// the data and the models. The log bucket does not log itself.
	accessLogs := awss3.NewBucket(scope, jsii.String("AccessLogs"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		RemovalPolicy:     removal,
		AutoDeleteObjects: jsii.Bool(removal == awscdk.RemovalPolicy_DESTROY),
		LifecycleRules: &[]*awss3.LifecycleRule{
			{Id: jsii.String("expire-access-logs"), Expiration: days(s.LogRetentionDays)},
		},
	})
	return awss3.NewBucket(scope, jsii.String("Results"), &awss3.BucketProps{
		ServerAccessLogsBucket: accessLogs,
		ServerAccessLogsPrefix: jsii.String("results/"),
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:             jsii.Bool(true),
		MinimumTLSVersion:      jsii.Number(1.2),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		RemovalPolicy:          removal,
		AutoDeleteObjects:      jsii.Bool(removal == awscdk.RemovalPolicy_DESTROY),
		LifecycleRules:         &rules,
	})
}

// newLake declares one Glue table per scorer over its Parquet files, with
// partition projection on stream/dt/hour (so no crawler and no MSCK REPAIR:
// new partitions are queryable as soon as files land), and an Athena
// workgroup that writes query results to the bucket.
func newLake(scope constructs.Construct, s Settings, bucket awss3.Bucket, ps []*Pipeline) {
	account := awscdk.Stack_Of(scope).Account()
	db := awsglue.NewCfnDatabase(scope, jsii.String("GlueDatabase"), &awsglue.CfnDatabaseProps{
		CatalogId: account,
		DatabaseInput: &awsglue.CfnDatabase_DatabaseInputProperty{
			Name:        jsii.String(s.GlueDatabase),
			Description: jsii.String("streamscore scored windows (Parquet, docs/sinks.md)"),
		},
	})
	for _, p := range ps {
		for _, rt := range p.Scorers {
			name := glueName(p.Name + "_" + rt.Scorer)
			loc := "s3://" + *bucket.BucketName() + "/" + p.ResultsKeyPrefix(rt.Scorer)
			t := awsglue.NewCfnTable(scope, jsii.String("GlueTable-"+p.Name+"-"+rt.Scorer), &awsglue.CfnTableProps{
				CatalogId:    account,
				DatabaseName: jsii.String(s.GlueDatabase),
				TableInput: &awsglue.CfnTable_TableInputProperty{
					Name:        jsii.String(name),
					Description: jsii.String(fmt.Sprintf("pipeline %s, scorer %s: one row per scored window; take the final row per result_id (docs/sinks.md)", p.Name, rt.Scorer)),
					TableType:   jsii.String("EXTERNAL_TABLE"),
					PartitionKeys: &[]*awsglue.CfnTable_ColumnProperty{
						{Name: jsii.String("stream"), Type: jsii.String("string")},
						{Name: jsii.String("dt"), Type: jsii.String("string")},
						{Name: jsii.String("hour"), Type: jsii.String("string")},
					},
					Parameters: map[string]any{
						"classification":              "parquet",
						"EXTERNAL":                    "TRUE",
						"projection.enabled":          "true",
						"projection.stream.type":      "enum",
						"projection.stream.values":    rt.Stream,
						"projection.dt.type":          "date",
						"projection.dt.format":        "yyyy-MM-dd",
						"projection.dt.range":         fmt.Sprintf("NOW-%dDAYS,NOW+1DAYS", s.ResultsExpirationDays),
						"projection.dt.interval":      "1",
						"projection.dt.interval.unit": "DAYS",
						"projection.hour.type":        "enum",
						"projection.hour.values":      hours(),
						"storage.location.template":   loc + "stream=${stream}/dt=${dt}/hour=${hour}",
					},
					StorageDescriptor: &awsglue.CfnTable_StorageDescriptorProperty{
						Location:     jsii.String(loc),
						InputFormat:  jsii.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"),
						OutputFormat: jsii.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"),
						SerdeInfo: &awsglue.CfnTable_SerdeInfoProperty{
							SerializationLibrary: jsii.String("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
						},
						Columns: resultColumns(rt),
					},
				},
			})
			t.Node().AddDependency(db)
		}
	}
	awsathena.NewCfnWorkGroup(scope, jsii.String("AthenaWorkGroup"), &awsathena.CfnWorkGroupProps{
		Name:                  jsii.String(*awscdk.Stack_Of(scope).StackName() + "-analytics"),
		Description:           jsii.String("queries over the streamscore results; results kept 30 days"),
		RecursiveDeleteOption: jsii.Bool(true),
		WorkGroupConfiguration: &awsathena.CfnWorkGroup_WorkGroupConfigurationProperty{
			EnforceWorkGroupConfiguration:   jsii.Bool(true),
			PublishCloudWatchMetricsEnabled: jsii.Bool(true),
			ResultConfiguration: &awsathena.CfnWorkGroup_ResultConfigurationProperty{
				OutputLocation:          jsii.String("s3://" + *bucket.BucketName() + "/" + AthenaPrefix),
				EncryptionConfiguration: &awsathena.CfnWorkGroup_EncryptionConfigurationProperty{EncryptionOption: jsii.String("SSE_S3")},
			},
		},
	})
}

// resultColumns is the Parquet schema of docs/sinks.md for one scorer.
// Every feature is a double (windowing emits float64 features); models
// with one output write `score` (a multi-output model's score_0..score_k
// are not known before its file is read, and are left out).
func resultColumns(rt ResultTable) []*awsglue.CfnTable_ColumnProperty {
	col := func(name, typ, comment string) *awsglue.CfnTable_ColumnProperty {
		c := &awsglue.CfnTable_ColumnProperty{Name: jsii.String(name), Type: jsii.String(typ)}
		if comment != "" {
			c.Comment = jsii.String(comment)
		}
		return c
	}
	cols := []*awsglue.CfnTable_ColumnProperty{
		col("result_id", "binary", "16 bytes of SHA-256 over stream, entity, window (ms) and model version"),
		col("entity", "string", ""),
		col("window_start", "timestamp", "UTC, inclusive"),
		col("window_end", "timestamp", "UTC, exclusive"),
	}
	for _, f := range rt.Features {
		cols = append(cols, col(f, "double", "feature"))
	}
	cols = append(cols,
		col("update", "boolean", "the row revises a window emitted before"),
		col("partial", "string", "empty for a whole window; evicted or late for a part of one (docs/sinks.md, readers' rule)"),
		col("score", "double", ""),
		col("model_version", "string", ""),
		col("fallback", "boolean", "scored by the fallback model"),
		col("partial_id", "string", "names a partial row's part; null for whole rows"),
	)
	if rt.Challenger {
		cols = append(cols, col("challenger_score", "double", ""), col("challenger_model_version", "string", ""))
	}
	return append(cols,
		col("event_time", "timestamp", "newest event in the window"),
		col("processing_time", "timestamp", "when the row was written"),
	)
}

func hours() string {
	h := make([]string, 24)
	for i := range h {
		h[i] = fmt.Sprintf("%02d", i)
	}
	return strings.Join(h, ",")
}

// glueName is a Glue/Athena table name: lower case, letters, digits and
// underscores.
func glueName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
}

// monitorPartsDays is how long the workers' monitoring parts are kept.
const monitorPartsDays = 30

// MonitorPartsPrefix is where a monitored window's workers write their
// parts: <prefix><pipeline>/<window>/parts/ (pipeline/monitor_io.go).
func MonitorPartsPrefix(pipeline, window string) string {
	return MonitoringPrefix + pipeline + "/" + window + "/parts/"
}
