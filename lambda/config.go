package lambda

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/streamscore/streamscore/sinks"
)

// Environment variables read by ConfigFromEnv (docs/lambda.md has the table).
const (
	EnvFeatureTable     = "STREAMSCORE_FEATURE_TABLE"
	EnvFeatureKey       = "STREAMSCORE_FEATURE_KEY"
	EnvFeatureSet       = "STREAMSCORE_FEATURE_SET"
	EnvModel            = "STREAMSCORE_MODEL"
	EnvModelSHA256      = "STREAMSCORE_MODEL_SHA256"
	EnvEntityField      = "STREAMSCORE_ENTITY_FIELD"
	EnvTypeField        = "STREAMSCORE_TYPE_FIELD"
	EnvLoginValue       = "STREAMSCORE_LOGIN_VALUE"
	EnvMaxFeatureAge    = "STREAMSCORE_MAX_FEATURE_AGE"
	EnvThreshold        = "STREAMSCORE_ALERT_THRESHOLD"
	EnvAlertTopic       = "STREAMSCORE_ALERT_TOPIC_ARN"
	EnvAlertSeverity    = "STREAMSCORE_ALERT_SEVERITY"
	EnvAlertRule        = "STREAMSCORE_ALERT_RULE"
	EnvDeadLetterQueue  = "STREAMSCORE_DLQ_URL"
	EnvDeadLetterBucket = "STREAMSCORE_DLQ_BUCKET"
	EnvDeadLetterPrefix = "STREAMSCORE_DLQ_PREFIX"
	EnvMetricsNamespace = "STREAMSCORE_METRICS_NAMESPACE"
	EnvLogLevel         = "STREAMSCORE_LOG_LEVEL"
	// EnvFunctionName is set by Lambda itself; it is the EMF dimension.
	EnvFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
)

// Config is the function's configuration. Defaults follow
// examples/churn.yaml, the pipeline whose feature table the function reads.
type Config struct {
	// FeatureTable is the DynamoDB table sinks.FeatureTable writes. Required.
	FeatureTable string
	// KeyAttribute is the table's partition key; default "entity" (as the
	// sink's, sinks.FeatureAttrEntity). The sort key is sinks.FeatureAttrSet.
	KeyAttribute string
	// FeatureSet is the sort key value of the window the model was
	// trained on, sinks.FeatureSet(pipeline, window); default
	// "churn#user_day", examples/churn.yaml's window.
	FeatureSet string
	// Model is a path to the model file (or SageMaker-style directory)
	// inside the deployment package, or an s3:// URI. Required.
	Model string
	// ModelSHA256, if set, pins the model's content (the hex SHA-256 of
	// the file as stored, what `streamscore model inspect` prints): a cold
	// start with any other content fails, naming both digests.
	ModelSHA256 string
	// EntityField, TypeField and LoginValue say how to read a login event:
	// the field holding the user (keying the feature table exactly as the
	// pipeline's decoder keys windows), the field holding the event type,
	// and the type value that means "login". Defaults: user_id,
	// event_type, login.
	EntityField, TypeField, LoginValue string
	// MaxFeatureAge is how old (now - window_end) stored features may be
	// before they are treated as missing; default 48h, two daily windows.
	MaxFeatureAge time.Duration
	// Threshold is the score at or above which a login is high risk
	// (alerted on, reported as high_risk); default 0.7, churn.yaml's rule.
	Threshold float64
	// AlertTopicARN, if set, receives an alert for every high-risk login
	// from a Kinesis stream, with Severity (default "warning") and Rule
	// (default "churn-at-login").
	AlertTopicARN, Severity, Rule string
	// DeadLetterQueueURL, if set, receives poison records from a Kinesis
	// stream; DeadLetterBucket (optional, with DeadLetterPrefix) receives
	// those too large for an SQS message. Without a queue, poison records
	// are reported as batch item failures instead.
	DeadLetterQueueURL, DeadLetterBucket, DeadLetterPrefix string
	// MetricsNamespace is the CloudWatch namespace of the EMF line each
	// invocation writes; default sinks.DefaultNamespace, as the pipeline's.
	MetricsNamespace string
	// FunctionName is the EMF "function" dimension; default
	// "streamscore-login" when AWS_LAMBDA_FUNCTION_NAME is unset.
	FunctionName string
	// LogLevel is the slog level; default info.
	LogLevel slog.Level
}

// DefaultFeatureSet is the feature set examples/churn.yaml's pipeline
// writes: its window user_day.
var DefaultFeatureSet = sinks.FeatureSet("churn", "user_day")

// Layout is the feature table's item layout as configured: the one type
// sinks.FeatureTable writes the table with, under this partition key.
func (c Config) Layout() sinks.FeatureLayout {
	return sinks.FeatureLayout{PartitionKey: c.KeyAttribute}
}

// ConfigFromEnv reads the configuration from environment variables through
// getenv (os.Getenv in the function), applies defaults and checks every
// value. The error lists every problem, each naming its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	str := func(name, def string) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		return v
	}
	c := Config{
		FeatureTable:       str(EnvFeatureTable, ""),
		KeyAttribute:       str(EnvFeatureKey, sinks.FeatureAttrEntity),
		FeatureSet:         str(EnvFeatureSet, DefaultFeatureSet),
		Model:              str(EnvModel, ""),
		ModelSHA256:        str(EnvModelSHA256, ""),
		EntityField:        str(EnvEntityField, "user_id"),
		TypeField:          str(EnvTypeField, "event_type"),
		LoginValue:         str(EnvLoginValue, "login"),
		AlertTopicARN:      str(EnvAlertTopic, ""),
		Severity:           str(EnvAlertSeverity, "warning"),
		Rule:               str(EnvAlertRule, "churn-at-login"),
		DeadLetterQueueURL: str(EnvDeadLetterQueue, ""),
		DeadLetterBucket:   str(EnvDeadLetterBucket, ""),
		DeadLetterPrefix:   str(EnvDeadLetterPrefix, ""),
		MetricsNamespace:   str(EnvMetricsNamespace, sinks.DefaultNamespace),
		FunctionName:       str(EnvFunctionName, "streamscore-login"),
	}
	if c.FeatureTable == "" {
		bad(EnvFeatureTable, "required: the DynamoDB feature table the pipeline writes")
	} else if n := len(c.FeatureTable); n < 3 || n > 255 || strings.IndexFunc(c.FeatureTable, notTableRune) >= 0 {
		bad(EnvFeatureTable, "%q is not a DynamoDB table name (3-255 characters of a-z A-Z 0-9 _ - .)", c.FeatureTable)
	}
	switch {
	case c.Model == "":
		bad(EnvModel, "required: a model file in the deployment package (e.g. model.json) or an s3://bucket/key URI")
	case strings.HasPrefix(c.Model, "s3://"):
		if b, k, ok := strings.Cut(strings.TrimPrefix(c.Model, "s3://"), "/"); !ok || b == "" || k == "" {
			bad(EnvModel, "%q: want s3://bucket/key", c.Model)
		}
	case strings.Contains(c.Model, "://"):
		bad(EnvModel, "%q: only file paths and s3:// URIs are supported", c.Model)
	}
	if v := c.ModelSHA256; v != "" {
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			bad(EnvModelSHA256, "%q is not a SHA-256 in hex (64 digits)", v)
		}
	}
	if len(c.FeatureSet) > sinks.MaxSortKeyBytes {
		bad(EnvFeatureSet, "%d bytes, over DynamoDB's %d-byte sort key limit", len(c.FeatureSet), sinks.MaxSortKeyBytes)
	}
	if c.EntityField == c.TypeField {
		bad(EnvTypeField, "%q is also the entity field (%s)", c.TypeField, EnvEntityField)
	}
	c.MaxFeatureAge = 48 * time.Hour
	if v := str(EnvMaxFeatureAge, ""); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(EnvMaxFeatureAge, "%q is not a duration (e.g. 48h, 90m)", v)
		case d <= 0:
			bad(EnvMaxFeatureAge, "%q must be positive", v)
		default:
			c.MaxFeatureAge = d
		}
	}
	c.Threshold = 0.7
	if v := str(EnvThreshold, ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			bad(EnvThreshold, "%q is not a finite number", v)
		} else {
			c.Threshold = f
		}
	}
	if c.AlertTopicARN != "" {
		if p := strings.Split(c.AlertTopicARN, ":"); len(p) != 6 || p[0] != "arn" || p[2] != "sns" || p[5] == "" {
			bad(EnvAlertTopic, "%q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", c.AlertTopicARN)
		}
	}
	if c.DeadLetterQueueURL != "" {
		if u, err := url.Parse(c.DeadLetterQueueURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(EnvDeadLetterQueue, "%q is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", c.DeadLetterQueueURL)
		}
	}
	if c.DeadLetterBucket != "" && c.DeadLetterQueueURL == "" {
		bad(EnvDeadLetterBucket, "set without %s: the bucket only holds records too large for the queue", EnvDeadLetterQueue)
	}
	if v := str(EnvLogLevel, ""); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad(EnvLogLevel, "%q: want debug, info, warn or error", v)
		}
	}
	return c, errors.Join(errs...)
}

func notTableRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
}
