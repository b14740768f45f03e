package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// nagLine is one line of cdk-nag's JSON report: a rule's verdict on one
// resource.
type nagLine struct {
	RuleID          string `json:"ruleId"`
	ResourceID      string `json:"resourceId"`
	Compliance      string `json:"compliance"`
	ExceptionReason string `json:"exceptionReason"`
	RuleLevel       string `json:"ruleLevel"`
}

// nagReport reads the AwsSolutions report cdk-nag wrote for the stack.
func nagReport(t *testing.T, s *synthesized) []nagLine {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.outdir, "AwsSolutions-*NagReport.json"))
	if len(files) != 1 {
		t.Fatalf("cdk-nag reports in %s: %v, want one: the checks did not run", s.outdir, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ Lines []nagLine }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	return r.Lines
}

// TestNagClean: cdk-nag's AwsSolutions checks find nothing unsuppressed,
// errors or warnings, in the default stack and in the stack with the
// whole loop (retraining, promotion tables, labels, fan-out, Spot); every
// suppression in the code suppresses a finding that exists (none is
// stale), with its reason; and the findings the stack fixed rather than
// suppressed are checked and compliant.
func TestNagClean(t *testing.T) {
	reasons := map[string]bool{} // every suppression reason in the code
	used := map[string]bool{}    // reasons that suppressed a finding
	for name, s := range map[string]*synthesized{"default stack": defaults(t), "loop stack": loop(t)} {
		lines := nagReport(t, s)
		compliant := map[string]bool{}
		for _, l := range lines {
			switch l.Compliance {
			case "Compliant":
				compliant[l.RuleID+" "+l.ResourceID] = true
			case "Suppressed":
				if l.ExceptionReason == "" || l.ExceptionReason == "N/A" {
					t.Errorf("%s: %s on %s suppressed without a reason", name, l.RuleID, l.ResourceID)
				}
				// IAM5's reasons are prefixed with the finding.
				_, reason, ok := strings.Cut(l.ExceptionReason, "] ")
				if !ok || !strings.HasPrefix(l.ExceptionReason, "[") {
					reason = l.ExceptionReason
				}
				used[reason] = true
			case "Not Applicable":
			default:
				t.Errorf("%s: %s %s on %s (%s)", name, l.RuleLevel, l.RuleID, l.ResourceID, l.Compliance)
			}
		}
		if len(compliant) < 30 {
			t.Errorf("%s: only %d compliant verdicts: did the checks run?", name, len(compliant))
		}
		// Fixed, not suppressed.
		for _, want := range []string{
			"AwsSolutions-S1 Streamscore/Results/Resource",
			"AwsSolutions-VPC7 Streamscore/Vpc/Resource",
		} {
			if !compliant[want] {
				t.Errorf("%s: %s is not compliant", name, want)
			}
		}
		if name == "loop stack" {
			for _, want := range []string{
				"AwsSolutions-SF1 Streamscore/Retraining/Resource",
				"AwsSolutions-SF2 Streamscore/Retraining/Resource",
				"AwsSolutions-DDB3 Streamscore/Promotions-factory-promotions/Resource",
			} {
				if !compliant[want] {
					t.Errorf("%s: %s is not compliant", name, want)
				}
			}
		}
		for _, res := range s.json["Resources"].(map[string]any) {
			md, _ := res.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := md["cdk_nag"].(map[string]any)
			for _, rule := range asList(nag["rules_to_suppress"]) {
				reasons[rule.(map[string]any)["reason"].(string)] = true
			}
		}
	}
	if len(reasons) < 10 {
		t.Errorf("only %d suppression reasons in the templates' metadata: were they found?", len(reasons))
	}
	var stale []string
	for r := range reasons {
		if !used[r] {
			stale = append(stale, r)
		}
	}
	sort.Strings(stale)
	for _, r := range stale {
		t.Errorf("a suppression suppresses nothing in either stack (stale, or its pattern no longer matches): %q", r)
	}
}
