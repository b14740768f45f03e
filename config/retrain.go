package config

// Retrain is when the monitors ask for retraining: a Retraining Requested
// event on EventBridge (package retrain owns the rule and the defaults).
type Retrain struct {
	// DriftPeriods: a monitored window that drifted in this many
	// consecutive periods asks. Zero takes the default, 3.
	DriftPeriods int `yaml:"drift_periods"`
	// QualityPeriods: a scorer whose served model violated a quality
	// constraint in this many consecutive periods asks. Zero: 1.
	QualityPeriods int `yaml:"quality_periods"`
	// Cooldown is the event time after a request during which the same
	// window or scorer does not ask again (a scorer is retrained once a
	// cooldown, whatever asked). Zero: 24h.
	Cooldown Duration `yaml:"cooldown"`
	// DataLookback is how far back the event's labelled data range
	// starts. Zero: 168h.
	DataLookback Duration `yaml:"data_lookback"`
	// EventBus is the bus's name or ARN. Empty: "default".
	EventBus string `yaml:"event_bus"`
}

func (c *Config) validateRetrain(p *problems) {
	r := c.Monitor.Retrain
	if r == nil {
		return
	}
	if r.DriftPeriods < 0 || r.QualityPeriods < 0 {
		p.add("monitor.retrain", "drift_periods and quality_periods must not be negative (0 takes the default)")
	}
	if r.Cooldown < 0 || r.DataLookback < 0 {
		p.add("monitor.retrain", "cooldown and data_lookback must be positive (0 takes the default)")
	}
	if len(c.Monitor.Windows) == 0 && len(c.Monitor.Quality) == 0 {
		p.add("monitor.retrain", "nothing to trigger on: monitor no window (monitor.windows) and no scorer's quality (monitor.quality)")
	}
}
