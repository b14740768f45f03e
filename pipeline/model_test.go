package pipeline_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamscore/streamscore/config"
)

// A model pinned by sha256 and overwritten in place is refused on hot
// reload: the running model keeps scoring and the scorer's alert topic
// hears of it at once.
func TestPinnedModelOverwriteIsRefusedAndAlerted(t *testing.T) {
	t.Parallel()
	tp := newTestPipeline(t)
	path := tp.cfg.Models["vib"].Path
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	src := strings.Replace(tp.yaml, "    path: "+path+"\n",
		"    path: "+path+"\n    sha256: "+hex.EncodeToString(sum[:])+"\n    reload_interval: 200ms\n", 1)
	cfg, err := config.Parse([]byte(src), "pinned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp.cfg = cfg
	tp.start(t, "worker-pinned")

	// Someone writes another model over the pinned one.
	if err := os.WriteFile(path, []byte(`{"streamscore_linear":1,"link":"logistic","intercept":12,
		"features":[{"name":"vibration_mean","weight":-20}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range receiveAlerts(t, tp.env, tp.alertURL, time.Now().Add(45*time.Second)) {
		if a.Rule == "model-reload-rejected" {
			if a.Model != "vib" || !strings.Contains(a.Message, "sha256") && !strings.Contains(a.Message, "digest") {
				t.Errorf("alert %+v does not name the model and the digest", a)
			}
			return
		}
	}
	t.Fatal("no model-reload-rejected alert within 45s of overwriting a pinned model")
}
