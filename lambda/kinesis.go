package lambda

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"

	"github.com/streamscore/streamscore/consumer"
	"github.com/streamscore/streamscore/scorer"
	"github.com/streamscore/streamscore/shardpos"
	"github.com/streamscore/streamscore/sinks"
)

// alertConcurrency bounds the alerts one batch publishes at once.
const alertConcurrency = 8

// pendingAlert is a high-risk login's alert and its Kinesis record.
type pendingAlert struct {
	rec   int
	alert sinks.Alert
}

// userRecord is one user record of a batch: a plain Kinesis record or one
// out of a KPL aggregate, with what parsing made of it.
type userRecord struct {
	// rec is the index of its Kinesis record in the batch: the unit of
	// Lambda's checkpoint and of batch item failures.
	rec           int
	stream, shard string
	pos           shardpos.Position
	// poison is set when the record cannot be processed at all.
	poison *sinks.Poison
	login  bool
	entity string
}

// batch handles a Kinesis event source mapping batch (one shard's records,
// in order) with ReportBatchItemFailures semantics: Lambda checkpoints
// before the lowest sequence number reported and retries everything from
// there, so the answer is the first Kinesis record that did not complete,
// or nothing. Records after that one are not alerted on here (they will
// come again), so a retry repeats as little as possible.
func (h *Handler) batch(ctx context.Context, log *slog.Logger, ev *events.KinesisEvent, c *counts) events.KinesisEventResponse {
	resp := events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}
	n := len(ev.Records)
	if n == 0 {
		return resp
	}
	// cut is the first Kinesis record handed back for retry (n: none).
	cut := n
	fail := func(rec int, why string, err error) {
		if rec < cut {
			cut = rec
			r := &ev.Records[rec]
			log.Warn("handing the batch back from this record", "sequence_number", r.Kinesis.SequenceNumber, "record", rec, "of", n, "why", why, "err", err)
		}
	}

	// Parse everything first: no I/O, and it tells where poison lies.
	units := h.parseBatch(ev)
	var poison []sinks.Poison
	firstPoison := -1
	for i := range units {
		u := &units[i]
		if u.poison == nil {
			if !u.login {
				c.skipped++
			}
			continue
		}
		c.poison++
		if firstPoison < 0 {
			firstPoison = u.rec
		}
		poison = append(poison, *u.poison)
		log.Warn("poison record", "reason", u.poison.Reason, "detail", u.poison.Detail, "stream", u.stream, "shard", u.shard,
			"sequence_number", u.pos.Sequence, "sub_sequence", u.pos.SubSequence, "dead_lettered", h.dlq != nil)
	}
	// Dead letters go out while the logins are read and scored, so a slow
	// queue does not starve the records before the first poison one.
	var deadLettered chan error
	if firstPoison >= 0 {
		if h.dlq == nil {
			// Nowhere to put it: hand it back rather than drop it. The
			// mapping's retry policy (maximum attempts or record age, then
			// its on-failure destination) decides what happens next.
			fail(firstPoison, "poison record and no dead-letter queue configured", nil)
		} else {
			deadLettered = make(chan error, 1)
			go func() { deadLettered <- h.dlq.Send(ctx, poison...) }()
		}
	}

	// Read the features of every login before the cut, each entity once.
	var entities []string
	seen := map[string]bool{}
	for i := range units {
		u := &units[i]
		if u.rec >= cut || !u.login || seen[u.entity] {
			continue
		}
		seen[u.entity] = true
		entities = append(entities, u.entity)
	}
	items, failed := h.getItems(ctx, entities)
	for i := range units {
		u := &units[i]
		if err, ok := failed[u.entity]; ok && u.login && u.rec < cut {
			fail(u.rec, "feature table unavailable", err)
		}
	}

	// Score the logins before the cut, all in one call.
	var logins []int
	for i := range units {
		if u := &units[i]; u.login && u.rec < cut {
			logins = append(logins, i)
		}
	}
	st := make([]stored, len(logins))
	cols := make([][]float64, len(h.features))
	for j := range cols {
		cols[j] = make([]float64, len(logins))
	}
	for k, i := range logins {
		st[k] = h.storedOrMissing(log, units[i].entity, items[units[i].entity])
		for j, v := range st[k].x {
			cols[j][k] = v
		}
	}
	scores := make([]float64, len(logins))
	var s scorer.Scratch
	if len(logins) > 0 {
		if err := h.model.Predict(cols, len(logins), [][]float64{scores}, &s); err != nil {
			// Only a model/input size mismatch gets here: a bug, not data.
			fail(units[logins[0]].rec, "scoring", err)
			logins = nil
		}
	}

	// Alert on the high-risk ones, once per user per batch.
	var alerts []pendingAlert
	alerted := map[string]bool{}
	for k, i := range logins {
		u := &units[i]
		c.scored++
		if !st[k].fresh {
			c.featuresMissing++
		}
		if scores[k] < h.cfg.Threshold {
			continue
		}
		c.highRisk++
		// The user id only at debug: it is personal data, and the
		// position finds the record (and the alert carries the id).
		log.Info("high-risk login", "score", scores[k], "threshold", h.cfg.Threshold,
			"features_found", st[k].fresh, "sequence_number", u.pos.Sequence, "sub_sequence", u.pos.SubSequence)
		log.Debug("high-risk login's user", "entity", u.entity, "sequence_number", u.pos.Sequence, "sub_sequence", u.pos.SubSequence)
		if h.alerts == nil || alerted[u.entity] {
			continue
		}
		alerted[u.entity] = true
		alerts = append(alerts, pendingAlert{u.rec, h.alert(u, scores[k], st[k], &s)})
	}
	// Records before the first poison one alert now; those after it wait
	// until its dead letter is durable: if it cannot be, they are handed
	// back, and alerting on them now would page again on every retry.
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		sem = make(chan struct{}, alertConcurrency)
	)
	publish := func(from, to int) {
		for _, p := range alerts {
			if p.rec < from || p.rec >= to {
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := h.alerts.Notify(ctx, p.alert); err != nil {
					mu.Lock()
					fail(p.rec, "alert topic unavailable", err)
					mu.Unlock()
				}
			}()
		}
	}
	if deadLettered == nil {
		publish(0, cut)
	} else {
		publish(0, min(firstPoison, cut))
		err := <-deadLettered
		mu.Lock()
		if err != nil {
			fail(firstPoison, "dead-letter queue unavailable", err)
		}
		to := cut
		mu.Unlock()
		publish(firstPoison, to)
	}
	wg.Wait()

	if cut < n {
		c.failures = n - cut
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: ev.Records[cut].Kinesis.SequenceNumber})
	}
	log.Info("kinesis batch", "records", n, "user_records", len(units), "scored", c.scored, "high_risk", c.highRisk,
		"features_missing", c.featuresMissing, "poison", c.poison, "skipped", c.skipped, "handed_back", c.failures)
	return resp
}

// parseBatch splits the batch into user records (deaggregating KPL
// aggregates as the pipeline's consumer does) and parses each.
func (h *Handler) parseBatch(ev *events.KinesisEvent) []userRecord {
	d := consumer.NewDeaggregator()
	var recs []consumer.Record
	units := make([]userRecord, 0, len(ev.Records))
	for i := range ev.Records {
		r := &ev.Records[i]
		stream, shard := streamAndShard(r)
		recs = d.Deaggregate(recs[:0], r.Kinesis.Data, consumer.Record{
			Stream: stream, ShardID: shard, SequenceNumber: r.Kinesis.SequenceNumber, PartitionKey: r.Kinesis.PartitionKey,
		})
		for _, ur := range recs {
			u := userRecord{rec: i, stream: stream, shard: shard, pos: shardpos.Position{Sequence: ur.SequenceNumber, SubSequence: ur.SubSequenceNumber}}
			poison := func(reason string, err error) *sinks.Poison {
				return &sinks.Poison{Reason: reason, Detail: err.Error(), Stream: stream, Shard: shard, Position: u.pos, Data: ur.Data}
			}
			if ur.Err != nil {
				u.poison = poison(sinks.ReasonDeaggregation, ur.Err)
			} else if ev, err := parseEvent(ur.Data, h.fields); err != nil {
				u.poison = poison(sinks.ReasonUndecodable, err)
			} else {
				u.login, u.entity = ev.login, ev.entity
			}
			units = append(units, u)
		}
	}
	return units
}

// alert builds the alert for a high-risk login in the pipeline's alert
// shape, so subscribers handle both alike. The window is the one whose
// features scored the login (zero when none did); with a FIFO topic it is
// part of the deduplication id, so the same user's logins against the same
// window within SNS's five-minute interval page once.
func (h *Handler) alert(u *userRecord, score float64, st stored, s *scorer.Scratch) sinks.Alert {
	al := sinks.Alert{
		Rule: h.cfg.Rule, State: sinks.StateFiring, Severity: h.cfg.Severity, Stream: u.stream, Entity: u.entity,
		Model: h.model.Version(), Score: score, Threshold: h.cfg.Threshold, TopFeatures: h.topFeatures(st.x, s),
	}
	if st.fresh {
		al.WindowStart, al.WindowEnd = st.windowStart, st.windowEnd
		al.Features = map[string]float64{}
		for j, name := range h.features {
			if v := st.x[j]; v == v {
				al.Features[name] = v
			}
		}
	}
	al.Subject = fmt.Sprintf("[%s] %s %s: %s %.3g >= %.3g (%s, %s)", strings.ToUpper(h.cfg.Severity), h.cfg.Rule, sinks.StateFiring,
		u.entity, score, h.cfg.Threshold, al.Model, u.stream)
	return al
}
