package windowing

import (
	"errors"
	"time"
)

// Errors a DecodeError wraps when a record parses but must not enter a
// window, so the caller can dead-letter it under its own reason.
var (
	// ErrEventTimeBounds: the event time lies too far ahead of (or behind)
	// the time Kinesis accepted the record. Such a time would move the
	// shard's watermark to where every later event is late.
	ErrEventTimeBounds = errors.New("event time out of bounds")
	// ErrEntity: the entity is one no sink could store (empty, too long,
	// not UTF-8), as judged by the check given to SetEntityCheck.
	ErrEntity = errors.New("entity refused")
)

// TimeBounds limits event times relative to each record's arrival time.
// A zero field is no limit on that side.
type TimeBounds struct {
	// MaxFutureSkew is how far an event time may lie ahead of the record's
	// arrival: a device clock running fast, or a corrupt field.
	MaxFutureSkew time.Duration
	// MaxPastAge is how far an event time may lie behind the record's
	// arrival.
	MaxPastAge time.Duration
}

// SetTimeBounds makes AppendArrived refuse event times outside b.
func (d *Decoder) SetTimeBounds(b TimeBounds) { d.bounds = b }

// SetEntityCheck makes Append refuse an entity for which check returns an
// error; the DecodeError names the entity field and wraps ErrEntity. The
// check must not retain its argument (it aliases the record).
func (d *Decoder) SetEntityCheck(check func(entity []byte) error) { d.checkEntity = check }

// AppendArrived is Append for a record that Kinesis accepted at arrival: the
// event time must also lie within the decoder's TimeBounds of it. A record
// outside them is not appended; its DecodeError names the time field and
// both times, and wraps ErrEventTimeBounds. A zero arrival skips the check.
func (d *Decoder) AppendArrived(rec []byte, offset uint64, arrival time.Time) error {
	d.arrival = 0
	if !arrival.IsZero() && (d.bounds.MaxFutureSkew > 0 || d.bounds.MaxPastAge > 0) {
		// Within ±(2^62-1), as event times are within ±2^62: their
		// difference then fits an int64.
		d.arrival = min(max(arrival.UnixNano(), -maxEventTime+1), maxEventTime-1)
		if d.arrival == 0 {
			d.arrival = 1 // 0 means "no check"
		}
	}
	err := d.Append(rec, offset)
	d.arrival = 0
	return err
}

// checkTime applies the bounds to the parsed event time t (ns).
func (d *Decoder) checkTime(t int64) *DecodeError {
	if d.arrival == 0 {
		return nil
	}
	if s := d.bounds.MaxFutureSkew; s > 0 && t > d.arrival && time.Duration(t-d.arrival) > s {
		return d.boundsErr(t, "ahead of", time.Duration(t-d.arrival), "future skew", s)
	}
	if a := d.bounds.MaxPastAge; a > 0 && t < d.arrival && time.Duration(d.arrival-t) > a {
		return d.boundsErr(t, "behind", time.Duration(d.arrival-t), "past age", a)
	}
	return nil
}

func (d *Decoder) boundsErr(t int64, rel string, by time.Duration, what string, limit time.Duration) *DecodeError {
	// Event times are within ±2^62 ns, so the differences above cannot
	// overflow; beyond ~292 years time.Duration saturates in the message
	// only.
	e := d.errf(1, len(d.rec), "event time %s is %s %s the record's arrival time %s, beyond the allowed %s of %s",
		time.Unix(0, t).UTC().Format(time.RFC3339Nano), by, rel, time.Unix(0, d.arrival).UTC().Format(time.RFC3339Nano), what, limit)
	e.Err = ErrEventTimeBounds
	return e
}

// DefaultMaxFutureSkew is the future skew allowed when none is configured:
// generous for device clocks kept by NTP or a phone network, tight enough
// that one corrupt time cannot stall a window for longer than that.
const DefaultMaxFutureSkew = 5 * time.Minute
