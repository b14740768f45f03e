package loadtest

import (
	"sort"
	"time"
)

// OnSchedule is how late after its due time an event may be sent and still
// count as on schedule. A publisher that falls further behind measures the
// local servers, not the pipeline: windows close late, and alerts arrive
// after the failures they should have predicted.
const OnSchedule = time.Second

// pace records, for one scenario, how well the publisher kept its schedule
// and when the stream carried each moment of event time. Guarded by the
// scenarioRun's mutex.
type pace struct {
	// due is when the run means to send an event: its arrival time for the
	// real-time fleet, its place on the compressed clock for a replay.
	due func(Event) time.Time

	onTime int
	maxLag time.Duration
	lags   []point // per PutRecords batch: when it completed, its worst lag

	// marks maps event time to wall time: marks[i].wall is when the stream
	// first carried an event at or past marks[i].event. Both grow.
	marks []mark
}

type mark struct{ event, wall time.Time }

// sent records a batch accepted by the stream at done.
func (p *pace) sent(evs []Event, done time.Time) {
	var worst time.Duration
	wm := time.Time{}
	if n := len(p.marks); n > 0 {
		wm = p.marks[n-1].event
	}
	advanced := false
	for _, e := range evs {
		lag := done.Sub(p.due(e))
		if lag <= OnSchedule {
			p.onTime++
		}
		worst = max(worst, lag)
		// Events held back on purpose (late ones) carry old event time; a
		// duplicate's does not move anything either way.
		if !e.Late && e.EventTime.After(wm) {
			wm, advanced = e.EventTime, true
		}
	}
	p.maxLag = max(p.maxLag, worst)
	p.lags = append(p.lags, point{done, worst.Seconds()})
	if advanced {
		p.marks = append(p.marks, mark{wm, done})
	}
}

// carried returns when the stream first carried event time t (an event at
// or past it), or false if it never did. A window's results can exist only
// after its end was carried, so latency is measured from there: for the
// real-time fleet that is the window's end itself (when the publisher keeps
// its schedule), for a replayed history the moment the replay reached it.
func (p *pace) carried(t time.Time) (time.Time, bool) {
	i := sort.Search(len(p.marks), func(i int) bool { return !p.marks[i].event.Before(t) })
	if i == len(p.marks) {
		return time.Time{}, false
	}
	return p.marks[i].wall, true
}

// replayDue places history on the run's compressed clock: the history from
// from, lasting span, is sent over replay starting at start.
func replayDue(start time.Time, replay time.Duration, from time.Time, span time.Duration) func(Event) time.Time {
	return func(e Event) time.Time {
		frac := float64(e.Arrival.Sub(from)) / float64(span)
		return start.Add(time.Duration(frac * float64(replay)))
	}
}
