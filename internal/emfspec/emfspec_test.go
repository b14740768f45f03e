package emfspec

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good := `{"_aws":{"Timestamp":1795514400000,"CloudWatchMetrics":[{"Namespace":"S","Dimensions":[["stream"]],"Metrics":[{"Name":"Score","Unit":"None"},{"Name":"N"}]}]},"stream":"f","Score":[0.1,0.9],"N":3}`
	if _, err := Check([]byte(good)); err != nil {
		t.Fatalf("valid line refused: %v", err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"no _aws", `"_aws"`, `"aws"`, "no _aws"},
		{"seconds timestamp", `1795514400000`, `1795514400`, "Timestamp"},
		{"empty namespace", `"Namespace":"S"`, `"Namespace":""`, "namespace"},
		{"dimension without member", `"stream":"f"`, `"strea":"f"`, "dimension"},
		{"metric without value", `"N":3`, `"M":3`, "metric N"},
		{"empty value array", `[0.1,0.9]`, `[]`, "0 values"},
		{"non-numeric value", `"N":3`, `"N":"3"`, "metric N"},
		{"unit not a string", `"Unit":"None"`, `"Unit":1`, "Unit"},
	} {
		_, err := Check([]byte(strings.Replace(good, tc.old, tc.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
