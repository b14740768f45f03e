package main

import (
	"slices"
	"strings"
	"testing"
)

// TestGlueTables: one table per scorer over its Parquet prefix, with the
// columns of docs/sinks.md (the window's features as doubles, in order)
// and partition projection on stream/dt/hour, so Athena finds new
// partitions without a crawler.
func TestGlueTables(t *testing.T) {
	s := defaults(t)
	bucket := s.idOf(t, "AWS::S3::Bucket", "Results")
	tables := map[string]map[string]any{}
	for _, r := range s.resources("AWS::Glue::Table") {
		p := props(r)
		if p["DatabaseName"] != "streamscore" {
			t.Errorf("table in database %v", p["DatabaseName"])
		}
		in := p["TableInput"].(map[string]any)
		tables[in["Name"].(string)] = in
	}
	if got := sortedKeys(tables); !slices.Equal(got, []string{"churn_churn", "factory_failure"}) {
		t.Fatalf("tables %v", got)
	}
	in := tables["factory_failure"]
	sd := in["StorageDescriptor"].(map[string]any)
	var cols []string
	types := map[string]string{}
	for _, c := range asList(sd["Columns"]) {
		c := c.(map[string]any)
		cols = append(cols, c["Name"].(string))
		types[c["Name"].(string)] = c["Type"].(string)
	}
	wantCols := []string{"result_id", "entity", "window_start", "window_end",
		"vibration_mean", "vibration_max", "vibration_std", "vibration_delta", "temperature_mean", "temperature_max",
		"temperature_p95", "pressure_mean", "rpm_mean", "current_mean", "readings", "missing_vibration",
		"update", "partial", "score", "model_version", "fallback", "partial_id", "event_time", "processing_time"}
	if !slices.Equal(cols, wantCols) {
		t.Errorf("columns\n %v\nwant\n %v", cols, wantCols)
	}
	for c, typ := range map[string]string{"result_id": "binary", "window_start": "timestamp", "rpm_mean": "double", "readings": "double",
		"update": "boolean", "score": "double", "processing_time": "timestamp"} {
		if types[c] != typ {
			t.Errorf("%s: %s, want %s", c, types[c], typ)
		}
	}
	if got := compact(in["PartitionKeys"]); got != `[{"Name":"stream","Type":"string"},{"Name":"dt","Type":"string"},{"Name":"hour","Type":"string"}]` {
		t.Errorf("partition keys %s", got)
	}
	loc := `{"Fn::Join":["",["s3://",{"Ref":"` + bucket + `"},"/results/factory/failure/`
	if got := compact(sd["Location"]); got != loc+`"]]}` {
		t.Errorf("location %s", got)
	}
	params := in["Parameters"].(map[string]any)
	for k, want := range map[string]string{
		"projection.enabled":        `"true"`,
		"projection.stream.type":    `"enum"`,
		"projection.stream.values":  `"factory-sensors"`,
		"projection.dt.type":        `"date"`,
		"projection.dt.format":      `"yyyy-MM-dd"`,
		"projection.hour.type":      `"enum"`,
		"storage.location.template": loc + `stream=${stream}/dt=${dt}/hour=${hour}"]]}`,
		"classification":            `"parquet"`,
	} {
		if got := compact(params[k]); got != want {
			t.Errorf("%s: %s, want %s", k, got, want)
		}
	}
	if h := params["projection.hour.values"].(string); !strings.HasPrefix(h, "00,01,") || !strings.HasSuffix(h, ",23") {
		t.Errorf("hour values %s", h)
	}
	if sd["SerdeInfo"].(map[string]any)["SerializationLibrary"] != "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe" {
		t.Errorf("serde %s", compact(sd["SerdeInfo"]))
	}
	wg := props(s.resources("AWS::Athena::WorkGroup")[s.idOf(t, "AWS::Athena::WorkGroup", "AthenaWorkGroup")])
	if got := compact(wg["WorkGroupConfiguration"]); !strings.Contains(got, `"/athena-results/"`) || !strings.Contains(got, `"EnforceWorkGroupConfiguration":true`) {
		t.Errorf("workgroup %s", got)
	}

	none := synth(t, map[string]any{"glueDatabase": ""})
	if n := len(none.resources("AWS::Glue::Table")) + len(none.resources("AWS::Athena::WorkGroup")); n != 0 {
		t.Errorf("glueDatabase empty: %d Glue/Athena resources", n)
	}
}
