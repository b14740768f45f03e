package scorer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack/devstacktest"
	"github.com/streamscore/streamscore/scorer/remotespec"
)

// loadInto loads a model into a multi-model server as SageMaker does
// (POST /models).
func loadInto(t *testing.T, url, name, path string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"model_name": name, "url": path})
	resp, err := http.Post(url+"/models", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loading %s from %s: %s: %s", name, path, resp.Status, body)
	}
}

// The remote scorer against `streamscore serve --multi-model`'s handler,
// through toxiproxy: rows routed per row to two different models by their
// entity's segment are scored by the right model (each model's embedded
// scores exactly), in every content type; a model unloaded from the
// endpoint leaves its rows to the fallback while the other model's rows go
// on being scored remotely.
func TestRemoteMultiModelEndpoint(t *testing.T) {
	ma, err := LoadModel(t.Context(), "testdata/fidelity/reg_squarederror.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := LoadModel(t.Context(), "testdata/fidelity/model.tar.gz", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ma.Features(), ",") != strings.Join(mb.Features(), ",") {
		t.Fatalf("the two models take different features: %v, %v", ma.Features(), mb.Features())
	}
	// SageMaker hands a multi-model container each model as a directory
	// holding what the model's S3 object unpacked to.
	dirB := t.TempDir()
	tarB, err := os.ReadFile("testdata/fidelity/model.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, "model.tar.gz"), tarB, 0o644); err != nil {
		t.Fatal(err)
	}
	h := NewMultiModelHandler(MultiModelOptions{Serve: ServeOptions{Logger: slog.New(slog.DiscardHandler)}})
	direct := startServe(t, nil, func(http.Handler) http.Handler { return h })
	loadInto(t, direct, "press.tar.gz", "testdata/fidelity/reg_squarederror.json")
	loadInto(t, direct, "lathe.tar.gz", dirB)
	url := devstacktest.New(t).Proxy(t, direct).URL()

	in := readTable(t, "testdata/fidelity/binary_logistic.input.csv")
	cols, _ := in.Select(ma.Features())
	ids := make([]string, in.Rows)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", []string{"press", "lathe"}[i%2], i)
	}
	rec := recordWithEntity(t, "machine_id", ids, ma.Features(), cols)
	wantA, wantB := embeddedScores(t, ma, rec), embeddedScores(t, mb, rec)
	if wantA.Scores[0][1] == wantB.Scores[0][1] {
		t.Fatal("the two models score alike: a mix-up would not show")
	}
	want := func(i int) float64 {
		if i%2 == 0 {
			return wantA.Scores[0][i]
		}
		return wantB.Scores[0][i]
	}
	fb, err := NewEmbedded(ma, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{remotespec.ContentCSV, remotespec.ContentJSON, remotespec.ContentJSONLines} {
		rs, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "factory", Features: ma.Features(), ContentType: ct,
			TargetModelFrom: "machine_id", TargetModelDelimiter: "-", TargetModelTemplate: "{machine_id}.tar.gz",
			MaxRowsPerRequest: 30, Timeout: 30 * time.Second, Fallback: fb})
		if err != nil {
			t.Fatal(err)
		}
		var res Result
		if err := rs.Score(t.Context(), rec, &res); err != nil {
			t.Fatal(err)
		}
		if res.Err != nil || res.Count(SourcePrimary) != in.Rows {
			t.Fatalf("%s: %d of %d rows primary, err %v", ct, res.Count(SourcePrimary), in.Rows, res.Err)
		}
		for i := range res.Len() {
			if res.Scores[0][i] != want(i) {
				t.Fatalf("%s: row %d (%s): %v, want its model's %v", ct, i, ids[i], res.Scores[0][i], want(i))
			}
		}
	}

	// The lathe model leaves the endpoint: its rows fall back, the press
	// model's are still scored by the endpoint.
	req, _ := http.NewRequest(http.MethodDelete, direct+"/models/lathe.tar.gz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("unloading lathe: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	rs, err := NewRemote(sdkClient(url), RemoteConfig{Endpoint: "factory", Features: ma.Features(),
		TargetModelFrom: "machine_id", TargetModelDelimiter: "-", TargetModelTemplate: "{machine_id}.tar.gz",
		Timeout: 30 * time.Second, Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := rs.Score(t.Context(), rec, &res); err != nil {
		t.Fatal(err)
	}
	for i := range res.Len() {
		src, score := SourcePrimary, want(i)
		if i%2 == 1 {
			src, score = SourceFallback, wantA.Scores[0][i]
		}
		if res.Source[i] != src || res.Scores[0][i] != score {
			t.Fatalf("after unloading lathe: row %d (%s): %v %v, want %v %v", i, ids[i], res.Source[i], res.Scores[0][i], src, score)
		}
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "lathe.tar.gz") {
		t.Fatalf("err %v does not name the unloaded model", res.Err)
	}
}
