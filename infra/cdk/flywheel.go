package main

// The flywheel's parts of a pipeline (docs/flywheel.md, docs/quality.md):
// the labels stream and the ground truth it writes, the quality monitor
// that judges predictions against it, and the promotion decision tables.

import (
	"fmt"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// Key prefixes of the flywheel in the results bucket.
const (
	// GroundTruthPrefix holds each pipeline's labels as Model Monitor's
	// ground-truth JSON Lines, under <pipeline>/ (GroundTruthKeyPrefix).
	GroundTruthPrefix = "groundtruth/"
	// ModelQualityPrefix is where the quality monitor writes, below the
	// monitor prefix: model-quality/<pipeline>/<scorer>/
	// (pipeline/quality_build.go).
	ModelQualityPrefix = MonitoringPrefix + "model-quality/"
	// RetrainedModelsPrefix receives the retraining jobs' models, under
	// <pipeline>/<scorer>/<job>/output/model.tar.gz.
	RetrainedModelsPrefix = ModelsPrefix + "retrained/"
)

// PipelineLabels is what the stack needs of a labels section
// (config.Labels): the stream the labels arrive on. Where they are
// written is the stack's (GroundTruthKeyPrefix): Render sets labels.prefix.
type PipelineLabels struct {
	Stream string
}

// ScorerPromotion is one scorer's promotion section (config.Promotion):
// which decision table it uses and whether the workers write to it.
type ScorerPromotion struct {
	Scorer string
	// Table is promotion.table, or defaultPromotionTable(pipeline).
	Table string
	// Auto: the pipeline promotes by itself, so its workers write the
	// decision (a conditional PutItem), not only read it.
	Auto bool
}

// defaultPromotionTable restates promotion.DefaultTable of the root module,
// which this module does not import (it would compile the whole worker
// into the CDK app); TestDefaultsMatchRootModule fails if they drift.
func defaultPromotionTable(pipeline string) string { return pipeline + "-promotions" }

// GroundTruthKeyPrefix is where the pipeline's ground truth goes in the
// bucket: groundtruth/<pipeline>/, which is also sinks.GroundTruthPrefix's
// default for a labels section without a prefix.
func (p *Pipeline) GroundTruthKeyPrefix() string { return GroundTruthPrefix + p.Name + "/" }

// ResultsRootPrefix is where the pipeline's S3 sink writes, all scorers:
// what a retraining request's data.results_prefix names.
func (p *Pipeline) ResultsRootPrefix() string { return ResultsPrefix + p.S3Prefix }

// ModelQualityKeyPrefix is where the pipeline's quality monitor writes its
// statistics, violations, judgements and progress.
func (p *Pipeline) ModelQualityKeyPrefix() string { return ModelQualityPrefix + p.Name + "/" }

// RetrainedKeyPrefix is where retraining writes a scorer's models.
func (p *Pipeline) RetrainedKeyPrefix(scorer string) string {
	return RetrainedModelsPrefix + p.Name + "/" + scorer + "/"
}

// loadFlywheel reads the labels, monitor.quality and promotion sections.
// Scorer names go into S3 prefixes, IAM resources and the retraining
// state machine's patterns, so they are held to safeName.
func (p *Pipeline) loadFlywheel(f *pipelineFile) error {
	if l := f.Labels; l != nil {
		if !slices.ContainsFunc(p.Streams, func(s PipelineStream) bool { return s.Name == l.Stream }) {
			return fmt.Errorf("%s: labels.stream: %q is not one of the pipeline's streams", p.File, l.Stream)
		}
		p.Labels = &PipelineLabels{Stream: l.Stream}
	}
	if m := f.Monitor; m != nil {
		if r := m.Retrain; r != nil {
			// The stack's retraining rule is on the default bus.
			if r.EventBus != "" && r.EventBus != "default" {
				return fmt.Errorf("%s: monitor.retrain.event_bus: %q: the CDK app's retraining rule listens on the default bus; leave event_bus empty", p.File, r.EventBus)
			}
			p.Retrain = true
		}
		for i, q := range m.Quality {
			if !safeName.MatchString(q.Scorer) {
				return fmt.Errorf("%s: monitor.quality[%d].scorer: %q: the stack names S3 prefixes after it, so use letters, digits, '-' and '_'", p.File, i, q.Scorer)
			}
			p.Quality = append(p.Quality, q.Scorer)
			if q.Constraints != "" {
				if p.QualityConstraints == nil {
					p.QualityConstraints = map[string]string{}
				}
				p.QualityConstraints[q.Scorer] = q.Constraints
			}
		}
	}
	for i, sc := range f.Scorers {
		if sc.Promotion == nil {
			continue
		}
		if !safeName.MatchString(sc.Name) {
			return fmt.Errorf("%s: scorers[%d].name: %q: the stack names S3 prefixes and the retraining patterns after it, so use letters, digits, '-' and '_'", p.File, i, sc.Name)
		}
		table := sc.Promotion.Table
		if table == "" {
			table = defaultPromotionTable(p.Name)
		}
		p.Promotions = append(p.Promotions, ScorerPromotion{Scorer: sc.Name, Table: table, Auto: sc.Promotion.Auto})
	}
	return nil
}

// newPromotionTables creates one decision table per distinct table name
// the pipelines' promotion sections use, with the layout
// promotion/dynamo/item.go reads: hash key pipeline, range key scorer,
// both strings. The tables carry the physical names the configurations
// give (or their default), so `streamscore model promote` run with the
// unrendered configuration finds the same table the workers follow.
func newPromotionTables(ss *Streamscore, removal awscdk.RemovalPolicy) {
	for _, p := range ss.Pipelines {
		for _, pr := range p.Promotions {
			if _, ok := ss.PromotionTables[pr.Table]; ok {
				continue
			}
			ss.PromotionTables[pr.Table] = awsdynamodb.NewTable(ss.Stack, jsii.String("Promotions-"+pr.Table), &awsdynamodb.TableProps{
				TableName:    jsii.String(pr.Table),
				PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("pipeline"), Type: awsdynamodb.AttributeType_STRING},
				SortKey:      &awsdynamodb.Attribute{Name: jsii.String("scorer"), Type: awsdynamodb.AttributeType_STRING},
				BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
				Encryption:   awsdynamodb.TableEncryption_AWS_MANAGED,
				// The record of which model ran when.
				PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
				DeletionProtection:               jsii.Bool(ss.Settings.RetainData),
				RemovalPolicy:                    removal,
			})
		}
	}
}

// grantFlywheel adds the worker's statements for the flywheel:
//
//   - ground truth (pipelines with labels): PutObject under
//     groundtruth/<pipeline>/ (the ground-truth sink uploads each file in
//     one PutObject). The labels stream is one of the pipeline's streams,
//     so ReadStreams already covers it;
//   - quality monitor (pipelines with monitor.quality): GetObject of the
//     judged scorers' results, of the ground truth and of their
//     constraints (ConstraintsKey), PutObject and
//     GetObject (HeadObject) under model-quality/<pipeline>/, and
//     ListBucket on exactly those prefixes (s3:prefix), for the listings
//     and for a 404 on a file not written yet;
//   - promotion: GetItem on every decision table a scorer follows
//     (promotion.Follower), PutItem only on the tables of scorers with
//     auto (Store.Promote's conditional write: a condition expression
//     needs no permission of its own); and GetObject of the retrained
//     models of the pipelines that are retrained, which a decision may
//     make champion; and, with auto, PutObject and GetObject under
//     models/promoted/: an automatic promotion of a configured challenger
//     keeps a copy of it there, pinned by digest, and the workers load the
//     champion from that copy (pipeline.keepPromoted);
//   - events (pipelines with monitor.retrain): PutEvents on the default
//     bus, only with source streamscore (the Retraining Requested and
//     Model Promoted events, package retrain).
func grantFlywheel(ss *Streamscore, add func(awsiam.PolicyStatement)) error {
	bucket := *ss.Bucket.BucketArn()
	var truthWrites, reads, readPrefixes, qualityFiles, retrained []string
	var tablesRead, tablesWritten []string
	keeps := false
	for _, p := range ss.Pipelines {
		if p.Labels != nil {
			truthWrites = append(truthWrites, bucket+"/"+p.GroundTruthKeyPrefix()+"*")
		}
		if len(p.Quality) > 0 {
			prefixes := []string{p.GroundTruthKeyPrefix()}
			for _, sc := range p.Quality {
				prefixes = append(prefixes, p.ResultsKeyPrefix(sc))
			}
			for _, k := range prefixes {
				reads = append(reads, bucket+"/"+k+"*")
				readPrefixes = append(readPrefixes, k+"*")
			}
			for _, sc := range p.Quality {
				key, _, err := p.ConstraintsKey(sc, *ss.Bucket.BucketName())
				if err != nil {
					return err
				}
				if key != "" && !slices.Contains(readPrefixes, key+"*") {
					reads = append(reads, bucket+"/"+key+"*")
					readPrefixes = append(readPrefixes, key+"*")
				}
			}
			qualityFiles = append(qualityFiles, bucket+"/"+p.ModelQualityKeyPrefix()+"*")
			readPrefixes = append(readPrefixes, p.ModelQualityKeyPrefix()+"*")
		}
		for _, pr := range p.Promotions {
			arn := *ss.PromotionTables[pr.Table].TableArn()
			if !slices.Contains(tablesRead, arn) {
				tablesRead = append(tablesRead, arn)
			}
			if pr.Auto && !slices.Contains(tablesWritten, arn) {
				tablesWritten = append(tablesWritten, arn)
			}
			keeps = keeps || pr.Auto
		}
		if ss.Settings.Retraining && len(p.Promotions) > 0 {
			retrained = append(retrained, bucket+"/"+RetrainedModelsPrefix+p.Name+"/*")
		}
	}
	if len(truthWrites) > 0 {
		add(statement("WriteGroundTruth", []string{"s3:PutObject"}, truthWrites, nil))
	}
	if len(reads) > 0 {
		add(statement("ReadQualityInputs", []string{"s3:GetObject"}, reads, nil))
		add(statement("WriteModelQuality", []string{"s3:PutObject", "s3:GetObject"}, qualityFiles, nil))
		add(statement("ListQualityInputs", []string{"s3:ListBucket"}, []string{bucket},
			map[string]any{"StringLike": map[string]any{"s3:prefix": readPrefixes}}))
	}
	if len(tablesRead) > 0 {
		add(statement("ReadPromotions", []string{"dynamodb:GetItem"}, tablesRead, nil))
	}
	if len(tablesWritten) > 0 {
		add(statement("WritePromotions", []string{"dynamodb:PutItem"}, tablesWritten, nil))
	}
	if len(retrained) > 0 {
		add(statement("ReadRetrainedModels", []string{"s3:GetObject"}, retrained, nil))
	}
	if keeps {
		// Configured models live under ModelsPrefix (ModelKey), so their
		// kept copies go to <ModelsPrefix>promoted/<digest>/<name>.
		add(statement("KeepPromotedModels", []string{"s3:PutObject", "s3:GetObject"}, []string{bucket + "/" + ModelsPrefix + "promoted/*"}, nil))
	}
	if slices.ContainsFunc(ss.Pipelines, func(p *Pipeline) bool { return p.Retrain }) {
		stack := ss.Stack
		bus := "arn:" + *stack.Partition() + ":events:" + *stack.Region() + ":" + *stack.Account() + ":event-bus/default"
		add(statement("PublishEvents", []string{"events:PutEvents"}, []string{bus},
			map[string]any{"StringEquals": map[string]any{"events:source": RetrainingEventSource}}))
	}
	return nil
}
