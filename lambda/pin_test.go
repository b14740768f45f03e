package lambda

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// noReads is a FeatureReader for cold starts that never read features.
type noReads struct{}

func (noReads) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}

// A pinned model starts only with the pinned content; a cold start with
// other content fails and names the variable.
func TestModelSHA256Pin(t *testing.T) {
	const model = "../examples/models/churn.json"
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	cfg, err := ConfigFromEnv(envOf(map[string]string{EnvFeatureTable: "features", EnvModel: model, EnvModelSHA256: good}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), cfg, Options{DynamoDB: noReads{}}); err != nil {
		t.Fatalf("the pinned content was refused: %v", err)
	}
	cfg.ModelSHA256 = strings.Repeat("0", 64)
	_, err = New(context.Background(), cfg, Options{DynamoDB: noReads{}})
	if err == nil || !strings.Contains(err.Error(), EnvModel) {
		t.Fatalf("other content: error %v, want one naming %s", err, EnvModel)
	}
	if _, err := ConfigFromEnv(envOf(map[string]string{EnvFeatureTable: "features", EnvModel: model, EnvModelSHA256: "abc"})); err == nil ||
		!strings.Contains(err.Error(), EnvModelSHA256+`: "abc" is not a SHA-256`) {
		t.Errorf("a short digest: %v", err)
	}
}
