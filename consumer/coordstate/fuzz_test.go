package coordstate

import (
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// FuzzMetricsItem: any item, in either layout, either decodes or yields a
// DecodeError (no panic); what decodes, re-encoded as Put would write it,
// decodes to the same values.
func FuzzMetricsItem(f *testing.F) {
	for _, js := range []string{fxMetrics30, fxMetrics35Legacy, fxMetrics35Single, fxLeaseHeld,
		`{"wid":{"S":"w"},"sts":{"M":{"C":{"L":[{"N":"1E-7"},{"N":"-0"},{"N":"9.99E124"}]}}},"opr":{"M":{"C":{"L":[{"N":"1e2"}]}}}}`} {
		f.Add([]byte(js))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		item, err := parseItem(data)
		if err != nil {
			return
		}
		for _, l := range []Layout{ThreeTables("a", "a"), SingleTable("a")} {
			s, err := MetricsFromItem(l, item)
			if err != nil {
				var de *DecodeError
				if !errors.As(err, &de) || de.Attr == "" {
					t.Fatalf("error without attribute: %v", err)
				}
				continue
			}
			for attr, m := range map[string]map[string][]float64{attrStats: s.Stats, attrOperatingRange: s.OperatingRange} {
				if m == nil {
					continue
				}
				av, err := encodeMetricMap(m, attr == attrOperatingRange)
				if err != nil {
					continue // decodable but not writable (e.g. beyond DynamoDB's range)
				}
				back, _, err := decodeMetricMap(map[string]types.AttributeValue{attr: av}, attr, attr == attrOperatingRange)
				if err != nil {
					t.Fatalf("%s re-encoded as %#v does not decode: %v", attr, av, err)
				}
				for k, v := range m {
					if len(v) > 0 && !slices.Equal(back[k], v) {
						t.Fatalf("%s[%q]: %v became %v", attr, k, v, back[k])
					}
				}
			}
		}
	})
}

// FuzzMigrationItem: any item decodes or yields a DecodeError; what
// decodes, re-encoded as CreateMigration writes it, decodes to the same
// state.
func FuzzMigrationItem(f *testing.F) {
	for _, js := range []string{fxMigrationLegacy, fxMigrationSingle, fxTableMigrationDeployed,
		`{"cv":{"S":"CLIENT_VERSION_2X"},"mb":{"S":"KclMigrationTool-rollback"},"mts":{"N":"1.7672256E12"},"h":{"L":[]}}`} {
		f.Add([]byte(js))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		item, err := parseItem(data)
		if err != nil {
			return
		}
		s, err := MigrationFromItem("t", item)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Attr == "" {
				t.Fatalf("error without attribute: %v", err)
			}
			return
		}
		enc := migrationEntry(s)
		if len(s.History) > 0 {
			enc[attrHistory] = historyValue(s.History)
		}
		back, err := MigrationFromItem("t", enc)
		if err != nil || !equalMigration(back, s) {
			t.Fatalf("%+v re-encoded decodes as %+v, %v", s, back, err)
		}
	})
}
