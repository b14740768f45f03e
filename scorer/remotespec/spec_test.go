package remotespec

import (
	"strings"
	"testing"
)

func TestScorePathErrors(t *testing.T) {
	for _, tc := range []struct{ path, accept, want string }{
		{"predictions.score", ContentJSON, "mark the array of rows with *"},
		{"predictions.*.*", ContentJSON, "more than one *"},
		{"*.score", ContentJSONLines, "has no *"},
		{"score", ContentCSV, "text/csv response has no paths"},
		{"predictions..score", ContentJSON, "empty step"},
		{"predictions.*.probabilities[x]", ContentJSON, "an index is a number"},
		{"predictions.*.probabilities[1", ContentJSON, "want [n] or [*]"},
		{"predictions.*.sc ore", ContentJSON, "white space"},
		{" score", ContentJSONLines, "white space"},
		{"score", "text/plain", "not one of"},
	} {
		_, err := ParseScorePath(tc.path, tc.accept)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScorePath(%q, %s) = %v, want an error saying %q", tc.path, tc.accept, err, tc.want)
		}
	}
	for _, tc := range []struct{ path, accept string }{
		{"", ContentJSON}, {"", ContentJSONLines}, {"", ContentCSV}, {"$", ContentJSONLines},
		{"$.predictions[*].probabilities[1]", ContentJSON}, {"*", ContentJSON}, {"outputs[0]", ContentJSONLines},
	} {
		if _, err := ParseScorePath(tc.path, tc.accept); err != nil {
			t.Errorf("ParseScorePath(%q, %s): %v", tc.path, tc.accept, err)
		}
	}
}

func TestScorePathSteps(t *testing.T) {
	p, err := ParseScorePath("$.result.outputs[*].p[2]", ContentJSON)
	if err != nil {
		t.Fatal(err)
	}
	rows, row := p.Steps()
	if len(rows) != 2 || rows[0].Key != "result" || rows[1].Key != "outputs" ||
		len(row) != 2 || row[0].Key != "p" || row[1].Key != "" || row[1].Index != 2 {
		t.Fatalf("steps %+v | %+v", rows, row)
	}
	if p, _ := ParseScorePath("", ContentJSONLines); p.String() != DefaultJSONLinesScorePath {
		t.Errorf("default path %q", p)
	}
}

func TestNameChecks(t *testing.T) {
	for _, tc := range []struct {
		what string
		err  error
		ok   bool
	}{
		{"model path", CheckTargetModel("models/press v2.tar.gz"), true},
		{"empty model", CheckTargetModel(""), false},
		{"leading space", CheckTargetModel(" m.tar.gz"), false},
		{"control character", CheckTargetModel("m\x01.tar.gz"), false},
		{"long model", CheckTargetModel(strings.Repeat("m", 1025)), false},
		{"component", CheckInferenceComponent("ic-blue-1"), true},
		{"component underscore", CheckInferenceComponent("ic_blue"), false},
		{"component trailing hyphen", CheckInferenceComponent("ic-"), false},
		{"component too long", CheckInferenceComponent(strings.Repeat("a", 64)), false},
		{"hostname", CheckTargetContainerHostname("xgb-1"), true},
		{"hostname leading hyphen", CheckTargetContainerHostname("-xgb"), false},
		{"template", CheckTargetModelTemplate("m-{kind}/{kind}.tar.gz", "kind"), true},
		{"template other placeholder", CheckTargetModelTemplate("m-{kind}-{v}.tar.gz", "kind"), false},
		{"template without placeholder", CheckTargetModelTemplate("m.tar.gz", "kind"), false},
		{"template without column", CheckTargetModelTemplate("m-{kind}", ""), false},
	} {
		if (tc.err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.what, tc.err)
		}
	}
	if _, err := ParseInstance("rows"); err == nil || !strings.Contains(err.Error(), "array, features, named") {
		t.Errorf("instance: %v", err)
	}
	if ct, err := ParseContentType(" Application/X-JSONLines"); err != nil || ct != ContentJSONLines {
		t.Errorf("content type %q %v", ct, err)
	}
}
