package lambda

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRuntimeEmulator measures the deployed binary under the Runtime
// Interface Emulator against the local stack (docs/lambda.md quotes it):
//
//	go test -run '^$' -bench RuntimeEmulator -benchtime 20x ./lambda/
//
// cold-*: a fresh emulator per iteration, timed from the first invocation's
// request to its answer (process start, configuration, model load, the
// first feature read); init-ms is the emulator's own INIT REPORT of the
// init phase alone. direct and kinesis-100: one warm function, one
// invocation per iteration (a login; a 100-record batch of logins of 100
// users, so 100 feature reads, three of them high-risk, with alerts
// published), with the
// median and 99th percentile per invocation, and the function process's
// peak resident memory.
func BenchmarkRuntimeEmulator(b *testing.B) {
	bootstrap := buildBootstrap(b)
	f := newFixture(b, usersNow())
	modelFile, err := filepath.Abs(churnModel)
	if err != nil {
		b.Fatal(err)
	}
	login := []byte(`{"user_id":"user-leaving","event_type":"login"}`)
	cold := func(b *testing.B, model string) {
		env := functionEnv(f, map[string]string{EnvFeatureTable: f.table, EnvModel: model})
		var inits, firsts []float64
		for b.Loop() {
			r := startRIE(b, bootstrap, env)
			start := time.Now()
			if status, body := r.invoke(b, login); status != 200 || !json200(body) {
				b.Fatalf("HTTP %d %s", status, body)
			}
			firsts = append(firsts, float64(time.Since(start).Microseconds())/1000)
			r.stop()
			if d := r.initDurations(); len(d) > 0 {
				inits = append(inits, d[0])
			}
		}
		b.ReportMetric(median(firsts), "first-invoke-ms")
		b.ReportMetric(median(inits), "init-ms")
	}
	b.Run("cold-model-in-zip", func(b *testing.B) { cold(b, modelFile) })
	b.Run("cold-model-s3", func(b *testing.B) { cold(b, uploadModel(b, f)) })

	warm := func(b *testing.B, vars map[string]string, payload []byte) {
		vars[EnvFeatureTable], vars[EnvModel] = f.table, modelFile
		r := startRIE(b, bootstrap, functionEnv(f, vars))
		for range 3 { // cold start and connection setup out of the way
			r.invoke(b, payload)
		}
		var ms []float64
		for b.Loop() {
			start := time.Now()
			if status, body := r.invoke(b, payload); status != 200 || !json200(body) {
				b.Fatalf("HTTP %d %s", status, body)
			}
			ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		}
		b.ReportMetric(median(ms), "p50-ms")
		b.ReportMetric(percentile(ms, 0.99), "p99-ms")
		b.ReportMetric(peakRSS(b, bootstrap), "peak-rss-MB")
	}
	b.Run("direct", func(b *testing.B) { warm(b, map[string]string{}, login) })
	b.Run("kinesis-100", func(b *testing.B) {
		topic, _ := f.env.CreateTopicQueue(b, false)
		users := []string{"user-loyal", "user-leaving", "user-quiet", "18273", "user-borderline"}
		var data [][]byte
		for i := range 100 {
			u := fmt.Sprintf("user-%03d", i) // 95 users without stored features
			if i < len(users) {
				u = users[i]
			}
			data = append(data, fmt.Appendf(nil, `{"user_id":%q,"event_type":"login","n":%d}`, u, i))
		}
		warm(b, map[string]string{EnvAlertTopic: topic}, kinesisEvent("app-events", "shardId-000000000000", data))
	})
}

// peakRSS is the function process's peak resident memory (VmHWM), in MB.
func peakRSS(b *testing.B, bootstrap string) float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.HasPrefix(cmd, []byte(bootstrap+"\x00")) {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
	}
	b.Fatalf("no running %s found in /proc", bootstrap)
	return 0
}

// json200 tells a function error (errorType) from an answer.
func json200(body []byte) bool {
	return len(body) > 0 && body[0] == '{' && !bytes.Contains(body, []byte(`"errorType"`))
}

func median(v []float64) float64 { return percentile(v, 0.5) }

func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
