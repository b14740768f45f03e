package scorer

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// A SageMaker training artifact in S3 loads directly, its ETag is the model
// version, and overwriting the object hot-reloads the new version.
func TestS3ModelAndReload(t *testing.T) {
	env := devstacktest.New(t)
	bucket := env.CreateBucket(t)
	put := func(name string) {
		_, err := env.S3.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("models/fraud/model.tar.gz"),
			Body: bytes.NewReader(fixtureBytes(t, name)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("model.tar.gz")
	uri := "s3://" + bucket + "/models/fraud/model.tar.gz"
	m, err := LoadModel(t.Context(), uri, env.S3)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Version(), "etag:") || m.Info().Objective != "binary:logistic" || !strings.HasSuffix(m.Info().Source, "!xgboost-model") {
		t.Fatalf("info %+v", m.Info())
	}
	w, err := WatchModel(t.Context(), uri, WatchOptions{S3: env.S3, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if changed, err := w.Poll(t.Context()); changed || err != nil {
		t.Fatalf("unchanged object: %v %v", changed, err)
	}
	v1 := w.Current().Version()
	put("early_stopping.json")
	if changed, err := w.Poll(t.Context()); !changed || err != nil || w.Current().Version() == v1 {
		t.Fatalf("overwritten object: changed %v, err %v, version %s", changed, err, w.Current().Version())
	}
	if _, err := LoadModel(t.Context(), "s3://"+bucket+"/missing", env.S3); err == nil {
		t.Fatal("missing object loaded")
	}
}
