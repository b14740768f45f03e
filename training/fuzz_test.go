package training

import (
	"strings"
	"testing"
)

// FuzzParseRequest: a request is outside data (an event anyone allowed to
// put events on the bus can send). Whatever it is, parsing returns an
// error or a request whose model key stays under the scorer's prefix.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"detail-type":"Retraining Requested","detail":{"schema_version":1,"request_id":"abc","pipeline":"p","scorer":"s","data":{"from":"2026-12-03T07:00:00Z","to":"2026-12-03T08:00:00Z"}}}`))
	f.Add([]byte(`{"schema_version":1,"request_id":"..","pipeline":"p","scorer":"s"}`))
	f.Add([]byte(`{"detail-type":"Model Promoted","detail":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			if r != nil {
				t.Fatal("a request and an error")
			}
			return
		}
		key := ModelKey(r.Pipeline, r.Scorer, r.RequestID)
		prefix := ModelKey(r.Pipeline, r.Scorer, "x")
		prefix = prefix[:len(prefix)-len("x/model.json")]
		if !strings.HasPrefix(key, prefix) || strings.Contains(key[len(prefix):], "/../") || strings.Count(key[len(prefix):], "/") != 1 {
			t.Fatalf("request id %q makes model key %q, outside %q", r.RequestID, key, prefix)
		}
	})
}
