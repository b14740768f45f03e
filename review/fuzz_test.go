package review

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamscore/streamscore/review/link"
)

// refusingKinesis fails every put: the fuzz target judges what the handler
// makes of a body, and a put per input would make the fuzzer crawl. It
// emulates nothing of Kinesis; the handler tests use the real server.
type refusingKinesis struct{ puts int }

func (k *refusingKinesis) PutRecord(context.Context, *kinesis.PutRecordInput, ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	k.puts++
	return nil, errors.New("refused")
}

var _ KinesisAPI = (*refusingKinesis)(nil)

// FuzzVerdictAPI: whatever a client posts to /verdicts, the handler
// answers 400 naming a field (or 413 for a body over the bound) without
// putting anything, or tries the put (503 here): it never panics, never
// answers anything else, and never puts a verdict it then calls bad.
func FuzzVerdictAPI(f *testing.F) {
	for _, s := range []string{
		`{"result_id":"0123456789abcdef0123456789abcdef","entity":"m-1","time":"2026-12-03T12:00:00Z","label":1}`,
		`{"result_id":"0123456789abcdef0123456789abcdef","entity":"m-1","time":"2026-12-03T12:00:00Z","label":true,"reviewer":"a","note":"n"}`,
		`{"result_id":"x","entity":"","time":"yesterday","label":"1"}`,
		`{"label":1e400}`, `{} {}`, `[]`, `{"unknown":1}`, ``, `{"time":"2026-12-03T12:00:00+01:00","label":-0}`,
	} {
		f.Add([]byte(s))
	}
	cfg := labelsConfig(f, "labels", "rfc3339", "bool")
	k := &refusingKinesis{}
	p, err := NewPoster(k, cfg)
	if err != nil {
		f.Fatal(err)
	}
	h := NewHandler(HandlerOptions{Poster: p, MaxBodyBytes: 4 << 10, Logger: slog.New(slog.DiscardHandler)})
	f.Fuzz(func(t *testing.T, body []byte) {
		before := k.puts
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/verdicts", bytes.NewReader(body)))
		put := k.puts > before
		switch w.Code {
		case http.StatusBadRequest:
			var e struct {
				Field string `json:"field"`
			}
			b, _ := io.ReadAll(w.Body)
			if err := json.Unmarshal(b, &e); err != nil || e.Field == "" {
				t.Fatalf("400 %s names no field", b)
			}
			if put {
				t.Fatalf("400 after a put: %s", body)
			}
		case http.StatusRequestEntityTooLarge:
			if put {
				t.Fatalf("413 after a put")
			}
		case http.StatusServiceUnavailable:
			if !put {
				t.Fatalf("503 without a put")
			}
		default:
			t.Fatalf("answer %d to %q", w.Code, body)
		}
	})
}

// FuzzLink: a review link from a config file either parses or is refused;
// a parsed one expands any alert's values without panicking, and a link
// without placeholders expands to itself.
func FuzzLink(f *testing.F) {
	for _, s := range []string{"https://review.example.com/a?id={result_id}&e={entity}", "http://h/{nope}", "https://h/{result_id", "ftp://h/", "https://h/plain", "{}"} {
		f.Add(s, "0123456789abcdef0123456789abcdef", "m-1 &x=<y>")
	}
	f.Fuzz(func(t *testing.T, raw, id, entity string) {
		tpl, err := link.Parse(raw)
		if err != nil {
			return
		}
		got := tpl.Expand(&link.Values{ResultID: id, Entity: entity})
		if !strings.Contains(raw, "{") && got != raw {
			t.Fatalf("%q without placeholders expands to %q", raw, got)
		}
	})
}
