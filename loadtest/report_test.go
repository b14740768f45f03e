package loadtest

import (
	"github.com/streamscore/streamscore/config"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDetection(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	end := t0.Add(time.Minute)
	truth := []Failure{
		{Machine: "m1", At: t0.Add(30 * time.Second)}, // fails in the run, alerted 10 s before
		{Machine: "m2", At: t0.Add(40 * time.Second)}, // fails in the run, alerted only after
		{Machine: "m3", At: t0.Add(50 * time.Second)}, // fails in the run, never alerted
		{Machine: "m4", At: t0.Add(2 * time.Minute)},  // degrading, fails after the run: alerted early
	}
	alert := func(e string, at time.Duration) ReceivedAlert {
		return ReceivedAlert{Stream: "s", Entity: e, State: "firing", Received: t0.Add(at)}
	}
	d := detect(truth, []ReceivedAlert{
		alert("m1", 20*time.Second), alert("m1", 25*time.Second),
		alert("m2", 45*time.Second),
		alert("m4", 55*time.Second),
		alert("m9", 10*time.Second), // healthy: a false alarm
		{Stream: "other", Entity: "m3", State: "firing", Received: t0},
	}, "s", end)
	if d.Failing != 3 || d.TruePositives != 1 || d.FalsePositives != 1 {
		t.Fatalf("detection = %+v, want 3 failing, 1 caught in time, 1 false alarm", d)
	}
	if d.Recall != 1.0/3 {
		t.Errorf("recall = %v, want 1/3", d.Recall)
	}
	if d.Precision != 2.0/3 { // m1 and m4 were rightly alerted, m9 was not
		t.Errorf("precision = %v, want 2/3", d.Precision)
	}
	if d.MedianLead != 10*time.Second {
		t.Errorf("median lead = %v, want 10s", d.MedianLead)
	}
}

// The explanation check reads each caught machine's first alert: its top
// feature must be a reading the machine's failure mode drives.
func TestDetectionChecksExplanations(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	truth := []Failure{
		{Machine: "bearing", Mode: BearingWear, At: t0.Add(time.Minute)},
		{Machine: "hot", Mode: Overheating, At: t0.Add(time.Minute)},
		{Machine: "wrong", Mode: Overheating, At: t0.Add(time.Minute)},
		{Machine: "silent", Mode: BearingWear, At: t0.Add(time.Minute)},
	}
	alert := func(e string, at time.Duration, top ...string) ReceivedAlert {
		return ReceivedAlert{Stream: "s", Entity: e, State: "firing", Received: t0.Add(at), TopFeatures: top}
	}
	d := detect(truth, []ReceivedAlert{
		alert("bearing", 20*time.Second, "vibration_max", "temperature_mean"),
		alert("hot", 10*time.Second, "temperature_p95"),
		alert("hot", 20*time.Second, "rpm_mean"), // not the first alert: ignored
		alert("wrong", 10*time.Second, "vibration_std"),
		alert("silent", 10*time.Second), // a model without contributions
	}, "s", t0.Add(2*time.Minute))
	if d.Explainable != 3 || d.Explained != 2 {
		t.Fatalf("explained %d of %d, want 2 of 3", d.Explained, d.Explainable)
	}
}

func TestWindowsOfAlignsToTheEpoch(t *testing.T) {
	w := hopping(30*time.Second, 10*time.Second)
	got := windowsOf(w, time.Date(2026, 11, 24, 10, 0, 25, 0, time.UTC))
	want := []time.Time{
		time.Date(2026, 11, 24, 10, 0, 20, 0, time.UTC),
		time.Date(2026, 11, 24, 10, 0, 10, 0, time.UTC),
		time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
	}
	if len(got) != len(want) {
		t.Fatalf("windows = %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Fatalf("windows = %v, want %v", got, want)
		}
	}
}

func hopping(size, slide time.Duration) config.Window {
	return config.Window{Kind: "hopping", Size: config.Duration(size), Slide: config.Duration(slide)}
}

func TestHTMLReportOpensOffline(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "src.js")
	if err := os.WriteFile(js, []byte("/* echarts */"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	rep := &Report{Started: time.Now(), Scenarios: []*ScenarioReport{{Name: "factory", PerSecond: map[int64]int{1: 5}, Detection: &Detection{}}}}
	path, err := rep.WriteHTMLDir(out, js)
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `src="./echarts.min.js"`) || strings.Contains(string(page), "https://") {
		t.Errorf("the report does not load echarts from beside itself:\n%s", page[:min(len(page), 600)])
	}
	if _, err := os.Stat(filepath.Join(out, "echarts.min.js")); err != nil {
		t.Errorf("echarts.min.js not copied beside the report: %v", err)
	}
}
