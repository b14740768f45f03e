package review

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/streamscore/streamscore/review/link"
)

// DefaultMaxBodyBytes bounds a request body when HandlerOptions leaves it
// zero: a verdict with its longest note is under 5 KB.
const DefaultMaxBodyBytes = 64 << 10

// HandlerOptions configure the review handler.
type HandlerOptions struct {
	// Poster writes the verdicts (required).
	Poster *Poster
	// MaxBodyBytes bounds a request body; zero takes DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives a line per verdict and per failed post; default
	// slog.Default().
	Logger *slog.Logger
}

// NewHandler serves human review:
//
//	GET  /review?result_id=…&entity=…&window_end=…  the alert and two buttons
//	POST /review                                    the form: puts the label, 303 to /review/thanks
//	GET  /review/thanks                             says what was recorded
//	POST /verdicts                                  JSON Verdict: 202 with the record's Receipt
//
// The page reads the link's placeholders back by name (review/link): put
// at least {result_id}, {entity} and {window_end} in alerts.review.link;
// without {window_end} the verdict takes the time it was given. A bad
// field is a 400 naming it; a failed put a 503 (nothing was written, the
// reviewer may try again: a label repeated for one id counts once).
//
// It authenticates no one: serve it where only reviewers reach it, or
// behind the proxy that signs them in.
func NewHandler(o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /review", h.page)
	mux.HandleFunc("POST /review", h.form)
	mux.HandleFunc("GET /review/thanks", h.thanks)
	mux.HandleFunc("POST /verdicts", h.api)
	return mux
}

type handler struct{ o HandlerOptions }

// alertView is what the page shows of an alert: the link's values as
// given (html/template escapes each).
type alertView struct {
	ResultID, Entity, Rule, Model, Stream, Score, WindowEnd string
	// Time is the verdict's time as the form sends it back.
	Time string
}

var pages = template.Must(template.New("review").Parse(`{{define "page"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Review: {{.Rule}} {{.Entity}}</title></head>
<body>
<h1>Review an alert</h1>
<table>
<tr><th>Rule</th><td>{{.Rule}}</td></tr>
<tr><th>Entity</th><td>{{.Entity}}</td></tr>
<tr><th>Score</th><td>{{.Score}}</td></tr>
<tr><th>Window end</th><td>{{.WindowEnd}}</td></tr>
<tr><th>Model</th><td>{{.Model}}</td></tr>
<tr><th>Stream</th><td>{{.Stream}}</td></tr>
<tr><th>Result id</th><td>{{.ResultID}}</td></tr>
</table>
<form method="post" action="/review">
<input type="hidden" name="result_id" value="{{.ResultID}}">
<input type="hidden" name="entity" value="{{.Entity}}">
<input type="hidden" name="time" value="{{.Time}}">
<p><label>Reviewer <input name="reviewer" maxlength="256"></label></p>
<p><label>Note <textarea name="note" maxlength="4096"></textarea></label></p>
<p><button type="submit" name="verdict" value="confirmed">Confirmed</button>
<button type="submit" name="verdict" value="false_alarm">False alarm</button></p>
</form>
</body></html>
{{end}}{{define "thanks"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verdict recorded</title></head>
<body><h1>Thank you</h1>
<p>Recorded <strong>{{.Verdict}}</strong> for {{.Entity}} (result id {{.ResultID}}).</p>
</body></html>
{{end}}`))

// page renders the alert the link names, with the verdict form.
func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := alertView{ResultID: q.Get(link.ResultID), Entity: q.Get(link.Entity), Rule: q.Get(link.Rule), Model: q.Get(link.Model),
		Stream: q.Get(link.Stream), Score: q.Get(link.Score), WindowEnd: q.Get(link.WindowEnd)}
	// The link's values are checked now, so that a broken link says so
	// before a reviewer spends time on it.
	check := Verdict{ResultID: v.ResultID, Entity: v.Entity, Time: time.Now(), Label: FalseAlarm}
	if v.WindowEnd != "" {
		t, err := time.Parse(time.RFC3339, v.WindowEnd)
		if err != nil {
			h.badRequest(w, bad(link.WindowEnd, "%q is not an RFC 3339 time", v.WindowEnd))
			return
		}
		check.Time, v.Time = t, link.FormatTime(t)
	}
	if _, err := h.o.Poster.Encode(check); err != nil {
		if fe, ok := IsFieldError(err); ok && fe.Field == "time" {
			err = &FieldError{Field: link.WindowEnd, Msg: fe.Msg} // the link's name for it
		}
		h.badRequest(w, err)
		return
	}
	h.render(w, http.StatusOK, "page", v)
}

// form takes the page's verdict.
func (h *handler) form(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		h.bodyError(w, err)
		return
	}
	f := r.PostForm
	v := Verdict{ResultID: f.Get("result_id"), Entity: f.Get("entity"), Reviewer: f.Get("reviewer"), Note: f.Get("note"), Time: time.Now()}
	switch verdict := f.Get("verdict"); verdict {
	case "confirmed":
		v.Label = Confirmed
	case "false_alarm":
		v.Label = FalseAlarm
	default:
		h.badRequest(w, bad("verdict", "%q: want confirmed or false_alarm", verdict))
		return
	}
	if s := f.Get("time"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			h.badRequest(w, bad("time", "%q is not an RFC 3339 time", s))
			return
		}
		v.Time = t
	}
	rc, err := h.post(w, r, v)
	if err != nil {
		return
	}
	q := url.Values{"result_id": {v.ResultID}, "entity": {v.Entity}, "verdict": {f.Get("verdict")}, "shard_id": {rc.ShardID}, "sequence_number": {rc.SequenceNumber}}
	http.Redirect(w, r, "/review/thanks?"+q.Encode(), http.StatusSeeOther)
}

// thanks confirms what the form recorded.
func (h *handler) thanks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	verdict := "false alarm"
	if q.Get("verdict") == "confirmed" {
		verdict = "confirmed"
	}
	h.render(w, http.StatusOK, "thanks", map[string]string{"Verdict": verdict, "Entity": q.Get("entity"), "ResultID": q.Get("result_id")})
}

// verdictJSON is POST /verdicts' body: a Verdict whose label may also be
// written as true or false.
type verdictJSON struct {
	ResultID string          `json:"result_id"`
	Entity   string          `json:"entity"`
	Time     string          `json:"time"`
	Label    json.RawMessage `json:"label"`
	Reviewer string          `json:"reviewer"`
	Note     string          `json:"note"`
}

// api takes a verdict as JSON.
func (h *handler) api(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var in verdictJSON
	if err := dec.Decode(&in); err != nil {
		h.bodyError(w, err)
		return
	}
	if dec.More() {
		h.badRequest(w, bad("body", "one JSON object per request"))
		return
	}
	v := Verdict{ResultID: in.ResultID, Entity: in.Entity, Reviewer: in.Reviewer, Note: in.Note}
	if in.Time == "" {
		h.badRequest(w, bad("time", "missing: the label's event time, RFC 3339 (the alert's window_end)"))
		return
	}
	t, err := time.Parse(time.RFC3339, in.Time)
	if err != nil {
		h.badRequest(w, bad("time", "%q is not an RFC 3339 time", in.Time))
		return
	}
	v.Time = t
	switch s := strings.TrimSpace(string(in.Label)); s {
	case "":
		h.badRequest(w, bad("label", "missing: 1 (confirmed) or 0 (false alarm)"))
		return
	case "true":
		v.Label = Confirmed
	case "false":
		v.Label = FalseAlarm
	default:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			h.badRequest(w, bad("label", "%s is not a number or a bool", s))
			return
		}
		v.Label = x
	}
	rc, err := h.post(w, r, v)
	if err != nil {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(rc)
}

// post puts a verdict, answering the request itself when it fails.
func (h *handler) post(w http.ResponseWriter, r *http.Request, v Verdict) (Receipt, error) {
	rc, err := h.o.Poster.Post(r.Context(), v)
	if _, ok := IsFieldError(err); ok {
		h.badRequest(w, err)
		return rc, err
	}
	if err != nil {
		h.o.Logger.Error("review: verdict not recorded", "result_id", v.ResultID, "err", err)
		h.fail(w, http.StatusServiceUnavailable, "", "the verdict was not recorded (the labels stream did not take it); try again")
		return rc, err
	}
	// No entity in the log: ids are personal data in some pipelines.
	h.o.Logger.Info("review: verdict recorded", "result_id", v.ResultID, "label", v.Label, "reviewer", v.Reviewer,
		"shard", rc.ShardID, "sequence", rc.SequenceNumber)
	return rc, nil
}

// bodyError answers a body that could not be read: too large, or not the
// JSON a verdict is.
func (h *handler) bodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		h.fail(w, http.StatusRequestEntityTooLarge, "body", "over "+strconv.FormatInt(tooBig.Limit, 10)+" bytes")
	case errors.As(err, &typ) && typ.Field == "":
		// The body itself is not an object (an array, a string).
		h.badRequest(w, bad("body", "want a JSON object (a verdict), got a JSON %s", typ.Value))
	case errors.As(err, &typ):
		h.badRequest(w, bad(typ.Field, "want a %s, got a JSON %s", typ.Type, typ.Value))
	case errors.Is(err, io.EOF):
		h.badRequest(w, bad("body", "empty: want a verdict"))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if field := strings.Trim(name, `"`); field != "" {
			h.badRequest(w, bad(field, "unknown field (fields: result_id, entity, time, label, reviewer, note)"))
		} else {
			h.badRequest(w, bad("body", "unknown field %s (fields: result_id, entity, time, label, reviewer, note)", name))
		}
	default:
		h.badRequest(w, bad("body", "%v", err))
	}
}

func (h *handler) badRequest(w http.ResponseWriter, err error) {
	if fe, ok := IsFieldError(err); ok {
		h.fail(w, http.StatusBadRequest, fe.Field, fe.Msg)
		return
	}
	h.fail(w, http.StatusBadRequest, "", err.Error())
}

// fail answers with a JSON error naming the field, which a browser shows
// as text and a client reads.
func (h *handler) fail(w http.ResponseWriter, code int, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	text := msg
	if field != "" {
		text = field + ": " + msg
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": text, "field": field})
}

func (h *handler) render(w http.ResponseWriter, code int, name string, data any) {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		h.o.Logger.Error("review: rendering the page", "page", name, "err", err)
		h.fail(w, http.StatusInternalServerError, "", "the page could not be rendered")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, b.String())
}
