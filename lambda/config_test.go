package lambda

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/config"
	"github.com/streamscore/streamscore/sinks"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// The defaults are the churn pipeline's: the function reads the table that
// examples/churn.yaml's pipeline writes, so a login is keyed, recognised
// and judged as that pipeline does.
func TestConfigDefaultsFollowTheChurnPipeline(t *testing.T) {
	pc, err := config.Load("../examples/churn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConfigFromEnv(envOf(map[string]string{EnvFeatureTable: "streamscore-features", EnvModel: "model.json"}))
	if err != nil {
		t.Fatal(err)
	}
	schema := pc.Schemas[pc.Streams[0].Schema]
	if c.EntityField != schema.Entity {
		t.Errorf("entity field %q, the churn schema keys by %q", c.EntityField, schema.Entity)
	}
	var loginFeature *config.Feature
	for i, f := range pc.Windows[0].Features {
		if f.Name == "logins" {
			loginFeature = &pc.Windows[0].Features[i]
		}
	}
	if loginFeature == nil {
		t.Fatal("examples/churn.yaml has no logins feature")
	}
	if c.TypeField != loginFeature.Field || c.LoginValue != loginFeature.Equals {
		t.Errorf("login = %s == %q, the pipeline counts logins as %s == %q", c.TypeField, c.LoginValue, loginFeature.Field, loginFeature.Equals)
	}
	if r := pc.Alerts.Rules[0]; c.Threshold != r.Threshold || c.Severity != r.Severity {
		t.Errorf("threshold %v severity %q, the pipeline's churn rule has %v %q", c.Threshold, c.Severity, r.Threshold, r.Severity)
	}
	if want := sinks.FeatureSet(pc.Pipeline, pc.Scorers[0].Window); c.FeatureSet != want {
		t.Errorf("feature set %q, the churn pipeline's scorer writes %q", c.FeatureSet, want)
	}
	if c.KeyAttribute != "entity" || c.MaxFeatureAge != 48*time.Hour || c.Rule != "churn-at-login" || c.MetricsNamespace != "Streamscore" ||
		c.FunctionName != "streamscore-login" || c.LogLevel != slog.LevelInfo || c.AlertTopicARN != "" || c.DeadLetterQueueURL != "" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigReadsEveryVariable(t *testing.T) {
	c, err := ConfigFromEnv(envOf(map[string]string{
		EnvFeatureTable: "features-prod", EnvFeatureKey: "user", EnvFeatureSet: "churn-v2#user_week", EnvModel: "s3://models/churn/model.tar.gz",
		EnvEntityField: "uid", EnvTypeField: "kind", EnvLoginValue: "sign_in", EnvMaxFeatureAge: "36h",
		EnvThreshold: "0.85", EnvAlertTopic: "arn:aws:sns:eu-west-1:123456789012:churn.fifo", EnvAlertSeverity: "critical",
		EnvAlertRule: "vip-login", EnvDeadLetterQueue: "https://sqs.eu-west-1.amazonaws.com/123456789012/dl",
		EnvDeadLetterBucket: "dl-bucket", EnvDeadLetterPrefix: "login/", EnvMetricsNamespace: "apps",
		EnvLogLevel: "debug", EnvFunctionName: "churn-login",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		FeatureTable: "features-prod", KeyAttribute: "user", FeatureSet: "churn-v2#user_week", Model: "s3://models/churn/model.tar.gz",
		EntityField: "uid", TypeField: "kind", LoginValue: "sign_in", MaxFeatureAge: 36 * time.Hour,
		Threshold: 0.85, AlertTopicARN: "arn:aws:sns:eu-west-1:123456789012:churn.fifo", Severity: "critical", Rule: "vip-login",
		DeadLetterQueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/dl", DeadLetterBucket: "dl-bucket", DeadLetterPrefix: "login/",
		MetricsNamespace: "apps", FunctionName: "churn-login", LogLevel: slog.LevelDebug,
	}
	if c != want {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

// Every bad value is reported at once, each error naming its variable.
func TestConfigNamesEveryBadVariable(t *testing.T) {
	_, err := ConfigFromEnv(envOf(map[string]string{
		EnvModel: "https://example.com/model.json", EnvMaxFeatureAge: "2 days", EnvThreshold: "NaN",
		EnvAlertTopic: "churn-alerts", EnvDeadLetterQueue: "dead-letters", EnvLogLevel: "loud",
		EnvTypeField: "user_id",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		EnvFeatureTable + ": required",
		EnvModel + `: "https://example.com/model.json": only file paths and s3:// URIs`,
		EnvMaxFeatureAge + `: "2 days" is not a duration`,
		EnvThreshold + `: "NaN" is not a finite number`,
		EnvAlertTopic + `: "churn-alerts" is not an SNS topic ARN`,
		EnvDeadLetterQueue + `: "dead-letters" is not an SQS queue URL`,
		EnvLogLevel + `: "loud"`,
		EnvTypeField + `: "user_id" is also the entity field`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvFeatureTable: "f", EnvModel: "m.json"}, EnvFeatureTable + `: "f" is not a DynamoDB table name`},
		{map[string]string{EnvFeatureTable: "features"}, EnvModel + ": required"},
		{map[string]string{EnvFeatureTable: "features", EnvModel: "s3://bucket-only"}, EnvModel + `: "s3://bucket-only": want s3://bucket/key`},
		{map[string]string{EnvFeatureTable: "features", EnvModel: "m.json", EnvMaxFeatureAge: "-1h"}, EnvMaxFeatureAge + `: "-1h" must be positive`},
		{map[string]string{EnvFeatureTable: "features", EnvModel: "m.json", EnvDeadLetterBucket: "b"}, EnvDeadLetterBucket + ": set without " + EnvDeadLetterQueue},
	} {
		_, err := ConfigFromEnv(envOf(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one saying %q", tc.env, err, tc.want)
		}
	}
}
