package dynamo

// The challenger registration: the item the CDK app's retraining state
// machine writes (infra/cdk/retraining.go, RegisterChallenger) beside the
// decision item, with one UpdateItem
//
//	key {pipeline, scorer: "<scorer>#challenger"}
//	SET challenger = {path, training_job}, request_id, event_id, registered_at
//	ADD registrations 1
//
// so its layout is:
//
//	pipeline      S  hash key
//	scorer        S  range key: the scorer's name + ChallengerSuffix
//	challenger    M  {path S: the model's s3:// URI (SageMaker's
//	                 S3ModelArtifacts), training_job S}
//	request_id    S  the Retraining Requested event's request_id
//	event_id      S  the EventBridge event's id
//	registered_at S  Step Functions' $$.State.EnteredTime (ISO 8601, UTC)
//	registrations N  how many registrations the item has taken, from 1
//
// It is an item of its own because a decision rewrites its whole item and
// a reader refuses a decision item without its schema and generation.

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ChallengerSuffix is appended to a scorer's name for the sort key of its
// challenger registration. The CDK app restates it (challengerSuffix in
// infra/cdk/retraining.go); this package's tests read that source and fail
// if the two differ.
const ChallengerSuffix = "#challenger"

// The registration item's attribute names, as the state machine writes
// them.
const (
	AttrChallenger       = "challenger"
	AttrChallengerPath   = "path"
	AttrTrainingJob      = "training_job"
	AttrRequestID        = "request_id"
	AttrEventID          = "event_id"
	AttrRegisteredAt     = "registered_at"
	AttrRegistrations    = "registrations"
	attrChallengerPrefix = AttrChallenger + "."
)

// Registration is a trained model registered as a scorer's challenger.
type Registration struct {
	// Path is where the model is: an s3:// URI to SageMaker's
	// model.tar.gz. Never empty in a registration read.
	Path string
	// TrainingJob is the SageMaker training job that made it.
	TrainingJob string
	// RequestID and EventID are the retraining request and the
	// EventBridge event that started the training.
	RequestID, EventID string
	// RegisteredAt is when the state machine's register step began.
	RegisteredAt time.Time
	// Registrations counts the registrations the item has taken (each
	// one adds 1): two registrations of one path differ by it.
	Registrations int64
}

// Challenger reads the scorer's challenger registration with a strongly
// consistent read (one GetItem). ok is false when none is registered. An
// item that is not what the state machine writes is an error naming the
// attribute.
func (s *Store) Challenger(ctx context.Context) (r Registration, ok bool, err error) {
	key := s.cfg.Scorer + ChallengerSuffix
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.cfg.Table),
		Key:            map[string]types.AttributeValue{AttrPipeline: str(s.cfg.Pipeline), AttrScorer: str(key)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return r, false, fmt.Errorf("promotion: read the challenger registration of scorer %s from table %s: %w", s.cfg.Scorer, s.cfg.Table, err)
	}
	if len(out.Item) == 0 {
		return r, false, nil
	}
	if r, err = decodeRegistration(out.Item); err != nil {
		return r, false, fmt.Errorf("promotion: table %s, pipeline %s, scorer %s: challenger registration: %w", s.cfg.Table, s.cfg.Pipeline, key, err)
	}
	return r, true, nil
}

// decodeRegistration reads what RegisterChallenger writes. The path, the
// time and the count are required (a worker cannot load or order a
// registration without them); the training job and the ids are
// provenance, optional for a registration written by hand, but of their
// type when present.
func decodeRegistration(it map[string]types.AttributeValue) (Registration, error) {
	var r Registration
	av, ok := it[AttrChallenger]
	if !ok {
		return r, fmt.Errorf("%s: missing", AttrChallenger)
	}
	m, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return r, fmt.Errorf("%s: not a map", AttrChallenger)
	}
	var err error
	if r.Path, err = getStr(m.Value, AttrChallengerPath, true); err != nil {
		return r, fmt.Errorf("%s%w", attrChallengerPrefix, err)
	}
	switch {
	case r.Path == "":
		return r, fmt.Errorf("%s%s: empty", attrChallengerPrefix, AttrChallengerPath)
	case len(r.Path) > MaxModelFieldBytes:
		// A promotion records the path: it must fit a decision.
		return r, fmt.Errorf("%s%s: %d bytes, at most %d", attrChallengerPrefix, AttrChallengerPath, len(r.Path), MaxModelFieldBytes)
	}
	if r.TrainingJob, err = getStr(m.Value, AttrTrainingJob, false); err != nil {
		return r, fmt.Errorf("%s%w", attrChallengerPrefix, err)
	}
	if r.RequestID, err = getStr(it, AttrRequestID, false); err != nil {
		return r, err
	}
	if r.EventID, err = getStr(it, AttrEventID, false); err != nil {
		return r, err
	}
	at, err := getStr(it, AttrRegisteredAt, true)
	if err != nil {
		return r, err
	}
	if r.RegisteredAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return r, fmt.Errorf("%s: %q is not an RFC 3339 time", AttrRegisteredAt, at)
	}
	if r.Registrations, err = getNum(it, AttrRegistrations); err != nil {
		return r, err
	}
	if r.Registrations < 1 {
		return r, fmt.Errorf("%s: %d, want at least 1 (each registration adds 1)", AttrRegistrations, r.Registrations)
	}
	return r, nil
}
