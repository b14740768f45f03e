package pipeline

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/promotion"
	"github.com/streamscore/streamscore/promotion/dynamo"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/sinks"
)

// registrationFixture is a decision table with a store on it and a
// bucket, on the local stack.
type registrationFixture struct {
	env    *devstacktest.Env
	table  string
	bucket string
	store  *dynamo.Store
}

func newRegistrationFixture(t *testing.T) *registrationFixture {
	t.Helper()
	env := devstacktest.New(t)
	fx := &registrationFixture{env: env, table: env.Name("promotions"), bucket: env.CreateBucket(t)}
	if err := dynamo.EnsureTable(devstacktest.Ctx(t), env.DynamoDB, fx.table); err != nil {
		t.Fatal(err)
	}
	var err error
	fx.store, err = dynamo.NewStore(env.DynamoDB, dynamo.Config{Table: fx.table, Pipeline: "test", Scorer: "failure",
		Configured: promotion.Model{Key: "vib", Path: "/models/vib.json", SHA256: "aa"}})
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// register writes the registration as the CDK's state machine does.
func (fx *registrationFixture) register(t *testing.T, path string) {
	t.Helper()
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	if _, err := fx.env.DynamoDB.UpdateItem(devstacktest.Ctx(t), &dynamodb.UpdateItemInput{
		TableName:        aws.String(fx.table),
		Key:              map[string]ddbtypes.AttributeValue{"pipeline": s("test"), "scorer": s("failure#challenger")},
		UpdateExpression: aws.String("SET challenger = :m, request_id = :r, event_id = :e, registered_at = :t ADD registrations :one"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":m":   &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{"path": s(path), "training_job": s("streamscore-r1")}},
			":r":   s("r1"),
			":e":   s("e1"),
			":t":   s("2026-12-03T13:30:01.123Z"),
			":one": &ddbtypes.AttributeValueMemberN{Value: "1"},
		},
	}); err != nil {
		t.Fatal(err)
	}
}

// putModel uploads a model.tar.gz holding a linear model and returns its
// s3:// URI.
func (fx *registrationFixture) putModel(t *testing.T, key string) string {
	t.Helper()
	body := []byte(`{"streamscore_linear":1,"link":"logistic","intercept":1,"features":[{"name":"vibration_mean","weight":3}]}`)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "xgboost-model", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
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
	if _, err := fx.env.S3.PutObject(devstacktest.Ctx(t), &s3.PutObjectInput{Bucket: aws.String(fx.bucket), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	return "s3://" + fx.bucket + "/" + key
}

// TestRefusedRegistrationIsRetriedWithBackoff: a registration whose model
// is not there is refused once (one alert), tried again after 1, 2, 4
// polls rather than at every poll, and loaded once the object is there;
// the configured challenger scores until then, and again when the
// registration is deleted.
func TestRefusedRegistrationIsRetriedWithBackoff(t *testing.T) {
	fx := newRegistrationFixture(t)
	ctx := devstacktest.Ctx(t)
	configured, err := scorer.ParseModel([]byte(`{"streamscore_linear":1,"link":"logistic","intercept":0,"features":[{"name":"vibration_mean","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	const key = "models/retrained/test/failure/streamscore-r1/output/model.tar.gz"
	path := "s3://" + fx.bucket + "/" + key
	loads, refusals := 0, 0
	rc := &registeredChallenger{key: "challenger", configuredPath: "/models/challenger.json", configured: configured,
		sw: scorer.NewSwitch(configured), loaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "loaded"}),
		log: slog.New(slog.DiscardHandler),
		load: func(ctx context.Context, p string) (*scorer.Model, error) {
			loads++
			return scorer.LoadModel(ctx, p, fx.env.S3)
		},
		refused: func(r dynamo.Registration, err error) {
			refusals++
			if r.Path != path || err == nil {
				t.Errorf("refused %+v (%v), want %s with its error", r, err, path)
			}
		},
	}
	rc.poll(ctx, fx.store)
	if loads != 0 || rc.sw.Current() != configured {
		t.Fatalf("no registration: %d loads, want none and the configured challenger", loads)
	}
	fx.register(t, path)
	wantLoads := []int{1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4}
	for i, want := range wantLoads {
		rc.poll(ctx, fx.store)
		if loads != want {
			t.Fatalf("poll %d: %d loads, want %d", i+1, loads, want)
		}
		if i < len(wantLoads)-1 && rc.sw.Current() != configured {
			t.Fatalf("poll %d: a refused registration replaced the challenger", i+1)
		}
		if i == len(wantLoads)-2 {
			fx.putModel(t, key) // the next try finds it
		}
	}
	if refusals != 1 {
		t.Errorf("%d refusals reported, want 1 (one alert per registration)", refusals)
	}
	if got := rc.sw.Current(); got == configured || got.Info().Source != path+"!xgboost-model" {
		t.Fatalf("after the object appeared, challenger %+v, want the registered model", got.Info())
	}
	rc.poll(ctx, fx.store)
	if loads != 4 {
		t.Errorf("the loaded registration was read again: %d loads", loads)
	}
	if _, err := fx.env.DynamoDB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(fx.table),
		Key: map[string]ddbtypes.AttributeValue{"pipeline": &ddbtypes.AttributeValueMemberS{Value: "test"},
			"scorer": &ddbtypes.AttributeValueMemberS{Value: "failure#challenger"}}}); err != nil {
		t.Fatal(err)
	}
	rc.poll(ctx, fx.store)
	if rc.sw.Current() != configured {
		t.Errorf("with the registration deleted, the challenger is not the configured one")
	}
}

// TestPromotionRecordsTheRegisteredModel: promoting a registered
// challenger records the path and digest the worker loaded (not the
// configured challenger, and not a kept copy: the training job's path is
// never rewritten, and the worker may not write under models/ in AWS).
func TestPromotionRecordsTheRegisteredModel(t *testing.T) {
	fx := newRegistrationFixture(t)
	ctx := devstacktest.Ctx(t)
	path := fx.putModel(t, "models/retrained/test/failure/streamscore-r1/output/model.tar.gz")
	mod, err := scorer.LoadModel(ctx, path, fx.env.S3)
	if err != nil {
		t.Fatal(err)
	}
	rc := &registeredChallenger{key: "challenger", sw: scorer.NewSwitch(mod)}
	rc.set(path, mod)
	pr := &promoter{pipeline: "test", scorer: "failure", auto: true, store: fx.store, registered: rc,
		log: slog.New(slog.DiscardHandler), by: "test", alert: func(sinks.Alert) {}, announce: func(context.Context, promotion.Decision) {},
		configuredChallenger: func(context.Context) (promotion.Model, error) {
			t.Error("the configured challenger was read for a promotion of the registered one")
			return promotion.Model{}, os.ErrNotExist
		},
		keep: func(_ context.Context, m promotion.Model) (promotion.Model, error) {
			t.Errorf("a registered model was copied to keep it: %+v", m)
			return m, nil
		},
	}
	if err := pr.promote(ctx, promotion.Verdict{Promote: true, Reason: "test: better"}); err != nil {
		t.Fatal(err)
	}
	d, err := fx.store.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inf := mod.Info()
	if d.Generation != 1 || d.Champion.Key != "challenger" || d.Champion.Path != path || d.Champion.SHA256 != inf.SHA256 || d.Champion.Version != inf.Version {
		t.Fatalf("decision's champion %+v, want %s with sha256 %s and version %s", d.Champion, path, inf.SHA256, inf.Version)
	}
}
