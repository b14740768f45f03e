package pipeline_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/monitor/dataset"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/scorer"
)

// stumpModel is an XGBoost JSON model of one split on vibration_mean at
// 0.6 with the two leaves given: the shape SageMaker's XGBoost saves.
func stumpModel(left, right float64) []byte {
	return fmt.Appendf(nil, `{"learner":{"attributes":{},"feature_names":["vibration_mean"],"feature_types":["float"],
"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"1"},"tree_info":[0],
"trees":[{"base_weights":[0,%[1]g,%[2]g],"categories":[],"categories_nodes":[],"categories_segments":[],"categories_sizes":[],
"default_left":[1,0,0],"id":0,"left_children":[1,-1,-1],"loss_changes":[1,0,0],"parents":[2147483647,0,0],"right_children":[2,-1,-1],
"split_conditions":[0.6,%[1]g,%[2]g],"split_indices":[0,0,0],"split_type":[0,0,0],"sum_hessian":[3,1,1],
"tree_param":{"num_deleted":"0","num_feature":"1","num_nodes":"3","size_leaf_vector":"1"}}]},"name":"gbtree"},
"learner_model_param":{"base_score":"5E-1","boost_from_average":"1","num_class":"0","num_feature":"1","num_target":"1"},
"objective":{"name":"binary:logistic","reg_loss_param":{"scale_pos_weight":"1"}}},"version":[1,7,6]}`, left, right)
}

// modelTarGz packs a model as SageMaker script mode uploads /opt/ml/model:
// a gzip'd tar with the model saved as xgboost-model.
func modelTarGz(t *testing.T, member string, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: member, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// registerChallenger writes a registration exactly as the CDK app's
// RegisterChallenger task does (infra/cdk/retraining.go; promotion/dynamo's
// tests hold that file to this expression).
func registerChallenger(t *testing.T, db *dynamodb.Client, table, scorerName, path, request string) {
	t.Helper()
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	if _, err := db.UpdateItem(devstacktest.Ctx(t), &dynamodb.UpdateItemInput{
		TableName:        aws.String(table),
		Key:              map[string]ddbtypes.AttributeValue{"pipeline": s("test"), "scorer": s(scorerName + "#challenger")},
		UpdateExpression: aws.String("SET challenger = :m, request_id = :r, event_id = :e, registered_at = :t ADD registrations :one"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":m":   &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{"path": s(path), "training_job": s("streamscore-" + request)}},
			":r":   s(request),
			":e":   s("event-" + request),
			":t":   s(time.Now().UTC().Format("2006-01-02T15:04:05.000Z")),
			":one": &ddbtypes.AttributeValueMemberN{Value: "1"},
		},
	}); err != nil {
		t.Fatal(err)
	}
}

// resultRows reads the scorer's Parquet results in S3, each object once.
type resultRows struct {
	seen map[string]bool
	rows []dataset.Prediction
}

func (r *resultRows) read(t *testing.T, f *qualityFleet) {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	objs, err := dataset.Open(ctx, f.tp.env.S3, "s3://"+f.tp.bucket+"/results/failure/")
	if err != nil {
		return // nothing written yet
	}
	var fresh []dataset.Object
	for _, o := range objs {
		if !r.seen[o.Name()] {
			r.seen[o.Name()] = true
			fresh = append(fresh, o)
		}
	}
	if _, err := dataset.ReadPredictions(ctx, fresh, dataset.ReadOptions{}, func(p dataset.Prediction) error {
		r.rows = append(r.rows, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// challengerVersions are the challenger versions of the rows whose
// windows end after from.
func (r *resultRows) challengerVersions(from time.Time) []string {
	var out []string
	for _, p := range r.rows {
		if p.WindowEnd.After(from) && !slices.Contains(out, p.ChallengerVersion) {
			out = append(out, p.ChallengerVersion)
		}
	}
	slices.Sort(out)
	return out
}

func counterWith(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestWorkerFollowsTheRegisteredChallenger: the CDK's retraining
// registers a SageMaker model.tar.gz as the scorer's challenger (the
// item the state machine writes); the running worker loads it, without a
// restart, and its next results in S3 carry the registered model's
// version as challenger_model_version. A registration of an object that
// is not there, then of a broken model, is refused (counted, alerted as
// a refused reload) and the registered model that loaded keeps scoring.
func TestWorkerFollowsTheRegisteredChallenger(t *testing.T) {
	env := devstacktest.New(t)
	ctx := devstacktest.Ctx(t)
	table := env.Name("promotions")
	if err := dynamo.EnsureTable(ctx, env.DynamoDB, table); err != nil {
		t.Fatal(err)
	}
	configured := filepath.Join(t.TempDir(), "challenger.json")
	if err := os.WriteFile(configured, stumpModel(-2, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startQualityFleetWith(t, fmt.Sprintf("{metric: recall, min_labelled: 100000, table: %s}", table), "", "",
		fmt.Sprintf("  challenger:\n    format: xgboost\n    path: %s\n", configured))
	tp := f.tp
	configuredVersion := mustLoad(t, configured, nil).Version()

	rows := &resultRows{seen: map[string]bool{}}
	from := f.a
	// scoredBy sends readings a second of event time at a time until the
	// windows after mark are in S3 and scored by the challenger want.
	scoredBy := func(want string, mark time.Time) {
		t.Helper()
		waitFor(t, 3*time.Minute, "results with challenger "+want, func() bool {
			f.sendReadings(t, from, 10)
			from = from.Add(time.Second)
			rows.read(t, f)
			return slices.Contains(rows.challengerVersions(mark), want)
		})
	}
	scoredBy(configuredVersion, f.a)

	// Training's output, registered as the state machine does.
	trained := "s3://" + tp.bucket + "/models/retrained/test/failure/streamscore-r1/output/model.tar.gz"
	if _, err := tp.env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(tp.bucket),
		Key: aws.String("models/retrained/test/failure/streamscore-r1/output/model.tar.gz"), Body: bytes.NewReader(modelTarGz(t, "xgboost-model", stumpModel(-3, 3)))}); err != nil {
		t.Fatal(err)
	}
	trainedVersion := mustLoad(t, trained, tp.env.S3).Version()
	if trainedVersion == configuredVersion {
		t.Fatal("the trained model's version is the configured one's: the test could not tell them apart")
	}
	registerChallenger(t, tp.env.DynamoDB, table, "failure", trained, "r1")
	mark := from
	scoredBy(trainedVersion, mark)
	loaded := map[string]string{"scorer": "failure", "outcome": "loaded"}
	if n := counterWith(t, f.reg, "streamscore_pipeline_challenger_registrations_total", loaded); n != 1 {
		t.Errorf("registrations loaded: %v, want 1", n)
	}

	// Refused registrations: the trained model keeps scoring.
	refused := map[string]string{"scorer": "failure", "outcome": "refused"}
	for i, bad := range []struct{ what, key string }{
		{"a missing object", "models/retrained/test/failure/streamscore-r2/output/model.tar.gz"},
		{"a broken model", "models/retrained/test/failure/streamscore-r3/output/model.tar.gz"},
	} {
		if i == 1 {
			if _, err := tp.env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(tp.bucket), Key: aws.String(bad.key),
				Body: bytes.NewReader(modelTarGz(t, "xgboost-model", []byte(`{"learner": "not a model"}`)))}); err != nil {
				t.Fatal(err)
			}
		}
		registerChallenger(t, tp.env.DynamoDB, table, "failure", "s3://"+tp.bucket+"/"+bad.key, fmt.Sprintf("r%d", i+2))
		waitFor(t, 2*time.Minute, "the refusal of "+bad.what, func() bool {
			return counterWith(t, f.reg, "streamscore_pipeline_challenger_registrations_total", refused) == float64(i+1)
		})
		mark := from
		waitFor(t, 3*time.Minute, "results after the refusal of "+bad.what, func() bool {
			f.sendReadings(t, from, 10)
			from = from.Add(time.Second)
			rows.read(t, f)
			return len(rows.challengerVersions(mark.Add(3*time.Second))) > 0
		})
		if got := rows.challengerVersions(mark); len(got) != 1 || got[0] != trainedVersion {
			t.Fatalf("after the refusal of %s, challenger versions %v, want only the trained %s", bad.what, got, trainedVersion)
		}
	}
	if n := counterWith(t, f.reg, "streamscore_pipeline_challenger_registrations_total", loaded); n != 1 {
		t.Errorf("registrations loaded: %v, want still 1", n)
	}
	var alerted bool
	waitFor(t, 2*time.Minute, "a model-reload-rejected alert", func() bool {
		for _, al := range receiveAlerts(t, tp.env, tp.alertURL, time.Now().Add(5*time.Second)) {
			alerted = alerted || al.Rule == "model-reload-rejected" && al.Model == "challenger"
		}
		return alerted
	})
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T, uri string, c scorer.ObjectGetter) *scorer.Model {
	t.Helper()
	m, err := scorer.LoadModel(devstacktest.Ctx(t), uri, c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
