package review

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamscore/streamscore/devstack/devstacktest"
)

// streamRecords reads every record of a one-shard stream from its start.
func streamRecords(t *testing.T, env *devstacktest.Env, stream string) []ktypes.Record {
	t.Helper()
	ctx := devstacktest.Ctx(t)
	it, err := env.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var out []ktypes.Record
	iter := it.ShardIterator
	for range 5 { // an empty page does not mean the end
		res, err := env.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Records...)
		if aws.ToInt64(res.MillisBehindLatest) == 0 && len(res.Records) == 0 {
			break
		}
		iter = res.NextShardIterator
	}
	return out
}

// TestHandlerPutsVerdictsOnTheLabelsStream: the page the link opens shows
// the alert with every value escaped; its form's verdict and a JSON
// verdict each land on a real Kinesis labels stream as one record in the
// labels schema, partitioned by entity; bad requests are refused naming
// the field and write nothing.
func TestHandlerPutsVerdictsOnTheLabelsStream(t *testing.T) {
	t.Parallel()
	env := devstacktest.New(t)
	stream := env.CreateStream(t, 1)
	cfg := labelsConfig(t, stream, "rfc3339", "bool")
	p, err := NewPoster(env.Kinesis, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(HandlerOptions{Poster: p}))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	we := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	const id = "5f0e4c1a9b7d2e38c6a1f04b9e3d7c21"
	evil := `<script>alert("x")</script>&"m`
	q := url.Values{"result_id": {id}, "entity": {evil}, "window_end": {we.Format(time.RFC3339Nano)}, "rule": {"failure-risk"},
		"score": {"0.97"}, "model": {`<b>vib</b>`}, "stream": {"factory"}}
	res, err := http.Get(srv.URL + "/review?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /review: %d %s", res.StatusCode, page)
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#34;m", "&lt;b&gt;vib&lt;/b&gt;", "0.97", "failure-risk", id,
		`value="confirmed"`, `value="false_alarm"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(string(page), "<script>") || strings.Contains(string(page), "<b>vib") {
		t.Errorf("page carries a value unescaped:\n%s", page)
	}

	// The form, as the page's "Confirmed" button posts it.
	form := url.Values{"result_id": {id}, "entity": {evil}, "time": {we.Format(time.RFC3339Nano)}, "verdict": {"confirmed"}, "reviewer": {"ana"}}
	res, err = noRedirect.PostForm(srv.URL+"/review", form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/review/thanks?") {
		t.Fatalf("POST /review: %d to %q, want 303 to the thanks page", res.StatusCode, loc)
	}
	res, err = http.Get(srv.URL + loc)
	if err != nil {
		t.Fatal(err)
	}
	thanks, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(thanks), "Recorded <strong>confirmed</strong>") {
		t.Errorf("thanks page:\n%s", thanks)
	}

	// The JSON API: a false alarm of another prediction.
	const id2 = "00000000000000000000000000000abc"
	res, err = http.Post(srv.URL+"/verdicts", "application/json",
		strings.NewReader(fmt.Sprintf(`{"result_id":%q,"entity":"m-2","time":%q,"label":0,"note":"sensor glitch"}`, id2, we.Format(time.RFC3339Nano))))
	if err != nil {
		t.Fatal(err)
	}
	var rc Receipt
	if err := json.NewDecoder(res.Body).Decode(&rc); err != nil || res.StatusCode != http.StatusAccepted || rc.SequenceNumber == "" || rc.ShardID != "shardId-000000000000" {
		t.Fatalf("POST /verdicts: %d %+v %v", res.StatusCode, rc, err)
	}
	res.Body.Close()

	// Bad requests: each names its field and writes nothing.
	big := `{"note":"` + strings.Repeat("n", DefaultMaxBodyBytes) + `"}`
	for _, tc := range []struct {
		name, path, ctype, body string
		code                    int
		field                   string
	}{
		{"form without a verdict", "/review", "application/x-www-form-urlencoded", url.Values{"result_id": {id}, "entity": {"m"}}.Encode(), 400, "verdict"},
		{"form with a bad time", "/review", "application/x-www-form-urlencoded", url.Values{"result_id": {id}, "entity": {"m"}, "verdict": {"confirmed"}, "time": {"yesterday"}}.Encode(), 400, "time"},
		{"form with a bad id", "/review", "application/x-www-form-urlencoded", url.Values{"result_id": {"x"}, "entity": {"m"}, "verdict": {"confirmed"}}.Encode(), 400, "result_id"},
		{"json without an entity", "/verdicts", "application/json", fmt.Sprintf(`{"result_id":%q,"time":%q,"label":1}`, id, we.Format(time.RFC3339)), 400, "entity"},
		{"json without a label", "/verdicts", "application/json", fmt.Sprintf(`{"result_id":%q,"entity":"m","time":%q}`, id, we.Format(time.RFC3339)), 400, "label"},
		{"json label of 2 for a bool", "/verdicts", "application/json", fmt.Sprintf(`{"result_id":%q,"entity":"m","time":%q,"label":2}`, id, we.Format(time.RFC3339)), 400, "label"},
		{"json unknown field", "/verdicts", "application/json", `{"result_id":"x","verdict":1}`, 400, "verdict"},
		{"json entity a number", "/verdicts", "application/json", `{"entity":7}`, 400, "entity"},
		{"json body too large", "/verdicts", "application/json", big, 413, "body"},
	} {
		res, err := http.Post(srv.URL+tc.path, tc.ctype, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error, Field string }
		_ = json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		if res.StatusCode != tc.code || e.Field != tc.field || !strings.HasPrefix(e.Error, tc.field+": ") {
			t.Errorf("%s: %d %+v, want %d naming %s", tc.name, res.StatusCode, e, tc.code, tc.field)
		}
	}
	res, err = http.Get(srv.URL + "/review?" + url.Values{"result_id": {"nothex"}, "entity": {"m"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("page of a link with a bad result_id: %d, want 400", res.StatusCode)
	}

	recs := streamRecords(t, env, stream)
	if len(recs) != 2 {
		t.Fatalf("%d records on the labels stream, want the two verdicts", len(recs))
	}
	for i, want := range []struct {
		entity, id string
		label      any
	}{{evil, id, true}, {"m-2", id2, false}} {
		entity, ts, label, gotID := decodeLabel(t, cfg, stream, recs[i].Data)
		if entity != want.entity || !ts.Equal(we) || label != want.label || gotID != want.id || aws.ToString(recs[i].PartitionKey) != want.entity {
			t.Errorf("record %d %s (key %q): %q %v %v %s, want %q %v %v %s", i, recs[i].Data, aws.ToString(recs[i].PartitionKey),
				entity, ts, label, gotID, want.entity, we, want.label, want.id)
		}
	}
	if aws.ToString(recs[1].SequenceNumber) != rc.SequenceNumber {
		t.Errorf("the JSON verdict's receipt says %s, the stream %s", rc.SequenceNumber, aws.ToString(recs[1].SequenceNumber))
	}
}
