// Package remotespec holds what the remote scorer and the configuration's
// validation both need to know about talking to a SageMaker endpoint: the
// content types and instance shapes the scorer speaks, the score path
// that finds scores in a JSON response, SageMaker's rules for the names a
// request carries and its payload limits. It imports nothing of the
// project, so the config package can check a file with the scorer's own
// rules without importing the scorer.
package remotespec

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Content types the remote scorer sends and asks for.
const (
	// ContentCSV is headerless CSV, one row per line in the endpoint's
	// feature order, an empty cell for a missing value: what SageMaker's
	// built-in XGBoost container takes.
	ContentCSV = "text/csv"
	// ContentJSON is {"instances": [...]} with one instance per row.
	ContentJSON = "application/json"
	// ContentJSONLines is one instance per line.
	ContentJSONLines = "application/jsonlines"
)

// Shapes of one instance in a JSON or JSON lines request.
const (
	// InstanceArray is [v, ...] in feature order: TensorFlow Serving's and
	// most custom containers' shape.
	InstanceArray = "array"
	// InstanceFeatures is {"features": [v, ...]}: what SageMaker's Linear
	// Learner (and the other built-in algorithms' JSON) takes.
	InstanceFeatures = "features"
	// InstanceNamed is {"feature name": v, ...}, for containers that read
	// a data frame.
	InstanceNamed = "named"
)

// Payload limits SageMaker sets on a request body.
const (
	// MaxPayloadBytes is a real-time endpoint's (6 MB).
	MaxPayloadBytes = 6 * 1024 * 1024
	// ServerlessMaxPayloadBytes is a serverless endpoint's (4 MB).
	ServerlessMaxPayloadBytes = 4 * 1024 * 1024
)

// ParseContentType returns the canonical name of a request or response
// content type the remote scorer speaks ("" is text/csv), or an error
// naming the ones it does.
func ParseContentType(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", ContentCSV:
		return ContentCSV, nil
	case ContentJSON:
		return ContentJSON, nil
	case ContentJSONLines, "application/x-jsonlines":
		return ContentJSONLines, nil
	}
	return "", fmt.Errorf("content type %q is not one of %s, %s, %s", s, ContentCSV, ContentJSON, ContentJSONLines)
}

// ParseInstance checks a JSON instance shape ("" is InstanceArray).
func ParseInstance(s string) (string, error) {
	switch s {
	case "", InstanceArray:
		return InstanceArray, nil
	case InstanceFeatures, InstanceNamed:
		return s, nil
	}
	return "", fmt.Errorf("instance shape %q is not one of %s, %s, %s", s, InstanceArray, InstanceFeatures, InstanceNamed)
}

// SageMaker's runtime API patterns for the names a request carries.
var (
	componentName = regexp.MustCompile(`^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	hostName      = regexp.MustCompile(`^[a-zA-Z0-9](-*[a-zA-Z0-9])*$`)
)

// CheckTargetModel reports whether name can be sent as an InvokeEndpoint
// TargetModel: 1 to 1024 printable characters, the first not a space (the
// model's path relative to the multi-model endpoint's S3 prefix, e.g.
// model-press.tar.gz).
func CheckTargetModel(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("target model is empty")
	case len(name) > 1024:
		return fmt.Errorf("target model %q... is %d bytes, over SageMaker's 1024", name[:40], len(name))
	}
	for i, r := range name {
		if !unicode.IsPrint(r) || (i == 0 && unicode.IsSpace(r)) {
			return fmt.Errorf("target model %q has %q at byte %d: SageMaker takes printable characters, the first not a space", clip(name), r, i)
		}
	}
	return nil
}

// CheckInferenceComponent reports whether name is a valid
// InferenceComponentName (up to 63 letters, digits and inner hyphens).
func CheckInferenceComponent(name string) error {
	if len(name) > 63 || !componentName.MatchString(name) {
		return fmt.Errorf("inference component %q: want up to 63 letters, digits and hyphens, not starting or ending with a hyphen", clip(name))
	}
	return nil
}

// CheckTargetContainerHostname reports whether name is a valid
// TargetContainerHostname (up to 63 letters, digits and hyphens).
func CheckTargetContainerHostname(name string) error {
	if len(name) > 63 || !hostName.MatchString(name) {
		return fmt.Errorf("target container hostname %q: want up to 63 letters, digits and hyphens, starting and ending with a letter or digit", clip(name))
	}
	return nil
}

// TemplatePlaceholder is where a target model template takes the value of
// column.
func TemplatePlaceholder(column string) string { return "{" + column + "}" }

// CheckTargetModelTemplate reports whether tmpl is a valid target model
// template for column: it holds {column} at least once, no other braces,
// and the rest is valid in a target model name.
func CheckTargetModelTemplate(tmpl, column string) error {
	if column == "" {
		return fmt.Errorf("target model template %q needs the column it takes values from (target_model_from)", tmpl)
	}
	ph := TemplatePlaceholder(column)
	if !strings.Contains(tmpl, ph) {
		return fmt.Errorf("target model template %q does not hold %s, where the value of column %q goes", tmpl, ph, column)
	}
	rest := strings.ReplaceAll(tmpl, ph, "x")
	if strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("target model template %q: the only placeholder is %s (the column target_model_from names)", tmpl, ph)
	}
	return CheckTargetModel(rest)
}

// clip keeps error messages short whatever the input.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
