package config

import (
	"fmt"
	"slices"
	"strings"
)

// validateMonitor checks the monitor section's references and returns the
// names of the monitored windows, which drift rules refer to.
func (c *Config) validateMonitor(p *problems, windows, scorers []string) []string {
	m := c.Monitor
	if m.Period < 0 || m.Settle < 0 {
		p.add("monitor", "period and settle must be positive (0 takes the default)")
	}
	var monitored []string
	for i, w := range m.Windows {
		path := fmt.Sprintf("monitor.windows[%d]", i)
		p.ref(path+".window", "window", w.Window, windows)
		p.name(path+".window", "window", w.Window, &monitored, false, "monitored")
		if w.Baseline == "" {
			p.add(path+".baseline", "missing: a directory or s3:// prefix with statistics.json and constraints.json (streamscore monitor baseline writes them)")
		} else if strings.HasPrefix(w.Baseline, "s3://") && len(w.Baseline) <= len("s3://") {
			p.add(path+".baseline", "%q names no bucket", w.Baseline)
		}
		var of []string // the window's scorers
		for _, s := range c.Scorers {
			if s.Window == w.Window {
				of = append(of, s.Name)
			}
		}
		switch {
		case w.Scorer != "":
			p.ref(path+".scorer", "scorer", w.Scorer, scorers)
			if len(of) > 0 && !slices.Contains(of, w.Scorer) {
				p.add(path+".scorer", "scorer %q does not score window %q (its scorers: %s)", w.Scorer, w.Window, strings.Join(of, ", "))
			}
		case len(of) == 0 && slices.Contains(windows, w.Window):
			p.add(path+".window", "window %q has no scorer: the monitor profiles a scorer's results", w.Window)
		case len(of) > 1:
			p.add(path+".scorer", "missing: window %q has several scorers (%s); name the one whose results are monitored", w.Window, strings.Join(of, ", "))
		}
	}
	if len(m.Windows) > 0 && c.Sinks.S3 == nil {
		p.add("monitor.windows", "the monitor writes its statistics to sinks.s3.bucket: configure sinks.s3")
	}
	return monitored
}
