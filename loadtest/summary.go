package loadtest

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// DetectionTarget is what the demo promises of its model on its fleet: recall
// and precision at least this. The summary marks a run that falls short.
const DetectionTarget = 0.9

// claim is one line of the verdict: what a user judges the run by, what was
// measured, and whether it is what it should be.
type claim struct {
	label, value string
	bad          bool
}

// verdictLine is the headline: whether every event was accounted for.
func (r *Report) verdictLine() (string, bool) {
	if err := r.OK(); err != nil {
		return "FAIL: " + strings.TrimPrefix(err.Error(), "loadtest: "), false
	}
	return "PASS: every published event accounted for, every closed window holds exactly the events sent", true
}

// claims are a scenario's verdict lines, in the order the summary and the
// report's first table show them.
func (s *ScenarioReport) claims() []claim {
	accounted := s.Published - s.Unaccounted
	cs := []claim{
		{"events accounted", fmt.Sprintf("%d of %d: %d scored, %d held in open windows, %d late -> dead-letter (%d sent late)",
			accounted, s.Published, s.Scored, s.Held, s.LateDLQ, s.LateSent), s.Unaccounted > 0},
		{"windows exact", fmt.Sprintf("%d of %d closed windows hold exactly the events sent", s.MatchedWindows, s.ClosedWindows),
			len(s.Mismatches) > 0},
	}
	if d := s.Detection; d != nil {
		cs = append(cs, claim{"detection", fmt.Sprintf("%d of %d failing machines alerted before failing (recall %.2f), %d false alarms (precision %.2f)",
			d.TruePositives, d.Failing, d.Recall, d.FalsePositives, d.Precision), d.Failing > 0 && d.Recall < DetectionTarget || d.Precision < DetectionTarget})
		lead := "no failure caught"
		if len(d.leads) > 0 {
			lead = fmt.Sprintf("alerts came a median %s before the failure (shortest %s)", roundS(d.MedianLead), roundS(d.MinLead))
		}
		cs = append(cs, claim{"lead time", lead, false})
	}
	cs = append(cs,
		claim{"alert latency", latencyText(s.AlertLatency, "alerts"), false},
		claim{"S3 latency", latencyText(s.S3Latency, "rows"), false},
		claim{"publisher", fmt.Sprintf("%d of %d events sent within %s of their schedule (worst lag %s)",
			s.OnSchedule, s.Published, OnSchedule, s.MaxLag.Round(10*time.Millisecond)), s.Behind()},
	)
	return cs
}

// Behind reports whether the publisher sent some event later than
// OnSchedule after it was due.
func (s *ScenarioReport) Behind() bool { return s.OnSchedule < s.Published }

// warning is what a user must read before trusting the numbers, or "".
func (s *ScenarioReport) warning() string {
	if !s.Behind() {
		return ""
	}
	return fmt.Sprintf("WARNING: the %s publisher fell behind its schedule: %d events were sent more than %s late (worst %s). "+
		"The machine or the local servers could not keep up, so windows closed late: the latency and detection "+
		"figures measure that, not the pipeline.", s.Name, s.Published-s.OnSchedule, OnSchedule, s.MaxLag.Round(100*time.Millisecond))
}

func latencyText(p Percentiles, what string) string {
	if p.N == 0 {
		return "none measured"
	}
	return fmt.Sprintf("p50 %s, p95 %s, p99 %s (%d %s)", p.P50.Round(10*time.Millisecond), p.P95.Round(10*time.Millisecond),
		p.P99.Round(10*time.Millisecond), p.N, what)
}

func roundS(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

// WriteSummary prints the terminal summary: the verdict first (accounting,
// exact windows, detection, latency, the publisher's schedule), then the
// details behind it.
func (r *Report) WriteSummary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "streamscore load test: %s of traffic, %d workers", r.Duration.Round(time.Second), r.Workers)
	if !r.Killed.IsZero() {
		fmt.Fprintf(tw, ", one killed with SIGKILL at +%s", r.Killed.Sub(r.Started).Round(time.Second))
	}
	fmt.Fprintln(tw)
	line, _ := r.verdictLine()
	fmt.Fprintf(tw, "\n%s\n", line)
	for _, s := range r.Scenarios {
		if warn := s.warning(); warn != "" {
			fmt.Fprintf(tw, "\n%s\n", warn)
		}
	}
	for _, s := range r.Scenarios {
		writeClaims(tw, fmt.Sprintf("%s (stream %s)", s.Name, s.Stream), s.claims())
		if d := s.Drift; d != nil {
			writeClaims(tw, s.Name+": Drift", d.claims())
		}
		if fw := s.Flywheel; fw != nil {
			writeClaims(tw, s.Name+": the model's loop", fw.claims())
		}
	}
	fmt.Fprintf(tw, "\ndetails\n")
	for _, s := range r.Scenarios {
		fmt.Fprintf(tw, "  %s: published\t%d events, %.0f events/s\n", s.Name, s.Published, s.PublishRate)
		fmt.Fprintf(tw, "  %s: results in S3\t%d windows in %d Parquet files\n", s.Name, s.Rows, s.Files)
		for _, m := range s.Mismatches {
			fmt.Fprintf(tw, "  %s: MISMATCH\t%s\n", s.Name, m)
		}
		if s.AlertRepeats > 0 {
			fmt.Fprintf(tw, "  %s: alerts repeated\t%d delivered again after the failover (at least once; latency counts the first delivery)\n", s.Name, s.AlertRepeats)
		}
		if len(s.OtherDLQ) > 0 {
			fmt.Fprintf(tw, "  %s: other dead letters\t%v\n", s.Name, s.OtherDLQ)
		}
		if d := s.Detection; d != nil {
			slices.Sort(d.FalseAlarms)
			for _, fa := range d.FalseAlarms {
				fmt.Fprintf(tw, "  %s: false alarm\t%s\n", s.Name, fa)
			}
		}
		if d := s.Drift; d != nil {
			for _, u := range d.Untouched {
				fmt.Fprintf(tw, "  %s: drift on untouched\t%s\n", s.Name, u)
			}
			for _, e := range d.Early {
				fmt.Fprintf(tw, "  %s: drift before the shift\t%s\n", s.Name, e)
			}
		}
		if d := s.Detection; d != nil && d.Explainable > 0 {
			fmt.Fprintf(tw, "  %s: explanation\t%d of %d caught machines: the first alert's top feature is a reading their failure drives\n",
				s.Name, d.Explained, d.Explainable)
		}
	}
	_ = tw.Flush()
	for _, s := range r.Scenarios {
		if fw := s.Flywheel; fw != nil {
			fmt.Fprintln(w)
			fw.writeQuality(w)
			for _, p := range fw.Problems {
				fmt.Fprintf(w, "  %s: could not read back: %s\n", s.Name, p)
			}
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "\nPROBLEM\t%s\n", p)
	}
}

// writeClaims writes a section of verdict lines, marking the bad ones.
func writeClaims(tw io.Writer, title string, cs []claim) {
	fmt.Fprintf(tw, "\n%s\n", title)
	for _, c := range cs {
		mark := ""
		if c.bad {
			mark = "  <-"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", c.label, c.value, mark)
	}
}

// OK reports whether every event was accounted for and nothing was found
// wrong. A publisher that fell behind does not fail the run (nothing was
// lost); the summary says so first.
func (r *Report) OK() error {
	var bad []string
	for _, s := range r.Scenarios {
		if s.Unaccounted > 0 || len(s.Mismatches) > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d events unaccounted, %d windows with wrong counts", s.Name, s.Unaccounted, len(s.Mismatches)))
		}
	}
	bad = append(bad, r.Problems...)
	if len(bad) > 0 {
		return fmt.Errorf("loadtest: %s", strings.Join(bad, "; "))
	}
	return nil
}
