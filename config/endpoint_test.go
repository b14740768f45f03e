package config

import (
	"strings"
	"testing"
	"time"
)

// withEndpoint is the minimal config whose scorer scores on an endpoint
// with the given keys (each "key: value", indented under endpoint).
func withEndpoint(keys ...string) string {
	ep := "    endpoint:\n      name: e\n"
	for _, k := range keys {
		ep += "      " + k + "\n"
	}
	return strings.Replace(minimal, "    model: m\n", "    model: m\n"+ep, 1)
}

// lineOf is the 1-based line of the first line of src holding key:.
func lineOf(t *testing.T, src, key string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), key+":") {
			return i + 1
		}
	}
	t.Fatalf("no line with %s: in\n%s", key, src)
	return 0
}

func TestEndpointKeysDecode(t *testing.T) {
	src := withEndpoint("content_type: application/jsonlines", "accept: application/json", "json_instance: features",
		"score_path: predictions.*.probabilities[1]", "inference_component: ic-blue", "target_container_hostname: xgb",
		"target_model_from: machine_id", "target_model_delimiter: \"-\"", "target_model_segment: 0",
		"target_models: {press: model-press.tar.gz}", "target_model_template: \"m-{machine_id}.tar.gz\"", "max_targets: 8",
		"serverless: true", "cold_start_timeout: 20s", "cold_after_idle: 2m", "max_payload_bytes: 1000000")
	cfg, err := Parse([]byte(src), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Scorers[0].Endpoint
	if e.ContentType != "application/jsonlines" || e.Accept != "application/json" || e.Instance != "features" ||
		e.ScorePath != "predictions.*.probabilities[1]" || e.InferenceComponent != "ic-blue" || e.TargetContainerHostname != "xgb" ||
		e.TargetModelFrom != "machine_id" || e.TargetModelDelimiter != "-" || e.TargetModels["press"] != "model-press.tar.gz" ||
		e.TargetModelTemplate != "m-{machine_id}.tar.gz" || e.MaxTargets != 8 || !e.Serverless ||
		e.ColdStartTimeout.D() != 20*time.Second || e.ColdAfterIdle.D() != 2*time.Minute || e.MaxPayloadBytes != 1000000 {
		t.Errorf("endpoint = %+v", e)
	}
	// The scorer's defaults stay the scorer's: nothing is filled in here.
	cfg, err = Parse([]byte(withEndpoint()), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg.Scorers[0].Endpoint; e.ContentType != "" || e.ColdStartTimeout != 0 || e.MaxTargets != 0 || e.MaxPayloadBytes != 0 {
		t.Errorf("config filled in the scorer's defaults: %+v", e)
	}
}

// Each endpoint key is checked by the scorer's own rules, and a bad value
// is reported at its file and line, naming the key and what to write.
func TestEndpointErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []string
		key  string // the key reported, under scorers[0].endpoint
		msg  string
	}{
		{"content type", []string{"content_type: text/xml"}, "content_type", `"text/xml" is not one of text/csv, application/json, application/jsonlines`},
		{"accept", []string{"accept: application/xml"}, "accept", `"application/xml" is not one of`},
		{"instance shape", []string{"content_type: application/json", "json_instance: matrix"}, "json_instance", `"matrix" is not one of array, features, named`},
		{"instance of CSV", []string{"json_instance: features"}, "json_instance", "applies to application/json and application/jsonlines requests only"},
		{"score path without rows", []string{"accept: application/json", "score_path: predictions.score"}, "score_path", "mark the array of rows with *"},
		{"score path for jsonlines", []string{"content_type: application/jsonlines", "score_path: predictions.*.score"}, "score_path", "has no *"},
		{"score path of CSV", []string{"score_path: score"}, "score_path", "a text/csv response has no paths"},
		{"score path syntax", []string{"accept: application/json", "score_path: predictions.*.p[one]"}, "score_path", "an index is a number"},
		{"inference component", []string{"inference_component: ic_blue"}, "inference_component", "letters, digits and hyphens"},
		{"container hostname", []string{"target_container_hostname: -xgb"}, "target_container_hostname", "letters, digits and hyphens"},
		{"target model", []string{"target_model: \" model.tar.gz\""}, "target_model", "the first not a space"},
		{"both targets", []string{"target_model: a.tar.gz", "target_model_from: machine_id", "target_model_template: \"m-{machine_id}\""}, "target_model_from", "not both"},
		{"unknown column", []string{"target_model_from: machine_type", "target_model_template: \"m-{machine_type}\""}, "target_model_from", `"machine_type" is not a column of window w's batches (its entity or a feature: machine_id, vib_mean)`},
		{"no mapping", []string{"target_model_from: machine_id"}, "target_model_from", "give target_models, target_model_template or both"},
		{"template placeholder", []string{"target_model_from: machine_id", "target_model_template: \"model-{machine}.tar.gz\""}, "target_model_template", "does not hold {machine_id}"},
		{"bad mapped model", []string{"target_model_from: machine_id", "target_models: {press: \"\"}"}, "target_models", "target model is empty"},
		{"segment without delimiter", []string{"target_model_from: machine_id", "target_model_template: \"m-{machine_id}\"", "target_model_segment: 1"}, "target_model_segment", "needs target_model_delimiter"},
		{"map without column", []string{"target_models: {press: p.tar.gz}"}, "target_models", "needs target_model_from"},
		{"payload over the limit", []string{"max_payload_bytes: 7000000"}, "max_payload_bytes", "over SageMaker's 6291456 byte limit for a real-time endpoint"},
		{"serverless payload", []string{"serverless: true", "max_payload_bytes: 5000000"}, "max_payload_bytes", "over SageMaker's 4194304 byte limit for a serverless endpoint"},
		{"negative idle", []string{"cold_after_idle: -1s"}, "cold_after_idle", `negative duration "-1s"`},
		{"negative max targets", []string{"max_targets: -2"}, "max_targets", "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := withEndpoint(tc.keys...)
			_, err := Parse([]byte(src), "p.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			want := "scorers[0].endpoint." + tc.key
			var found *Error
			for _, e := range err.(Errors) {
				if strings.HasPrefix(e.Path, want) && strings.Contains(e.Msg, tc.msg) {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("want %s: %q in\n%v", want, tc.msg, err)
			}
			if line := lineOf(t, src, tc.key); found.Line != line || found.File != "p.yaml" {
				t.Errorf("%v: at %s:%d, want p.yaml:%d", found, found.File, found.Line, line)
			}
		})
	}
}
