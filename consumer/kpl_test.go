package consumer

import (
	"crypto/md5"

	"google.golang.org/protobuf/encoding/protowire"
)

// userRecord is one record to aggregate in tests.
type userRecord struct {
	pk, ehk string
	data    []byte
}

// encodeAggregate builds a KPL aggregate the way the KPL does: magic,
// AggregatedRecord protobuf (key tables, then records), MD5 of the
// protobuf. It exists so unit tests, the fuzz corpus and benchmarks need no
// Node; the integration test checks the deaggregator against AWS Labs' own
// encoder.
func encodeAggregate(recs []userRecord) []byte {
	pkIdx := map[string]uint64{}
	ehkIdx := map[string]uint64{}
	var body []byte
	for _, r := range recs {
		if _, ok := pkIdx[r.pk]; !ok {
			pkIdx[r.pk] = uint64(len(pkIdx))
			body = protowire.AppendTag(body, 1, protowire.BytesType)
			body = protowire.AppendString(body, r.pk)
		}
	}
	for _, r := range recs {
		if _, ok := ehkIdx[r.ehk]; r.ehk != "" && !ok {
			ehkIdx[r.ehk] = uint64(len(ehkIdx))
			body = protowire.AppendTag(body, 2, protowire.BytesType)
			body = protowire.AppendString(body, r.ehk)
		}
	}
	for _, r := range recs {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.VarintType)
		m = protowire.AppendVarint(m, pkIdx[r.pk])
		if r.ehk != "" {
			m = protowire.AppendTag(m, 2, protowire.VarintType)
			m = protowire.AppendVarint(m, ehkIdx[r.ehk])
		}
		m = protowire.AppendTag(m, 3, protowire.BytesType)
		m = protowire.AppendBytes(m, r.data)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, m)
	}
	out := append([]byte{}, kplMagic[:]...)
	out = append(out, body...)
	sum := md5.Sum(body)
	return append(out, sum[:]...)
}
