package sinks

// The Parquet shape of the S3 sink's files: the columns written (result_id
// first, the input minus process-local bookkeeping, the fixed trailing
// columns), their encodings, and the Hive partition of a row.

import (
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
)

// writerProps returns the Parquet writer properties for files of schema sc.
// They depend on the schema because encodings are chosen per column; the
// schema only changes when the input does, so the last one is kept.
func (h *s3Handler) writerProps(sc *arrow.Schema) *parquet.WriterProperties {
	if h.props != nil && h.propsFor.Equal(sc) {
		return h.props
	}
	level := h.o.ZstdLevel
	if level == 0 {
		level = 1
	}
	opts := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(level),
		// No dictionaries: zstd removes the repetition in entity and
		// model_version as well, and arrow-go's dictionary encoder
		// allocates for every value it hashes (two per row: 9,800
		// allocations per 4,096-row batch with them, 1,500 without).
		parquet.WithDictionaryDefault(false),
		// result_id is 16 random bytes: zstd cannot shrink it and
		// min/max statistics of it prune nothing.
		parquet.WithCompressionFor(ColResultID, compress.Codecs.Uncompressed),
		parquet.WithStatsFor(ColResultID, false),
		// Pages of up to 4 MiB: encoding measured 8 to 10 % faster than
		// with 1 MiB pages at the same file size. A 32 MiB row group still
		// holds several pages per column for readers to skip by.
		parquet.WithDataPageSize(4 << 20),
		parquet.WithMaxRowGroupLength(1 << 20),
		parquet.WithCreatedBy("streamscore"),
	}
	for _, f := range sc.Fields() {
		if id := f.Type.ID(); h.o.FloatEncoding != FloatPlain && (id == arrow.FLOAT64 || id == arrow.FLOAT32) {
			opts = append(opts, parquet.WithEncodingFor(f.Name, parquet.Encodings.ByteStreamSplit))
		}
		if !h.o.FeatureStats && isFeature(f.Name) {
			opts = append(opts, parquet.WithStatsFor(f.Name, false))
		}
	}
	h.props, h.propsFor = parquet.NewWriterProperties(opts...), sc
	return h.props
}

// output builds the record written to Parquet: result_id first, the input
// columns minus process-local bookkeeping, and the fixed trailing columns.
// The computed columns are built straight into their value buffers, with a
// few allocations per batch and none per row.
func (h *s3Handler) output(b Batch, v *view) arrow.RecordBatch {
	mem := memory.DefaultAllocator
	n := v.n
	// result_id is stored as its 16 bytes, not the 32 hex digits other
	// sinks show: random bytes do not compress, so the hex form cost 17
	// bytes a row after zstd and 13 % of the encode time for nothing.
	ids := make([]byte, 0, resultIDBytes*n)
	var scratch [512]byte
	for i := range n {
		in := scratch[:0]
		if len(b.Stream)+len(v.entity.Value(i))+len(v.modelVersion(i))+64 > len(scratch) {
			in = nil // long strings: let append allocate
		}
		ids = appendResultIDSum(ids, in, b.Stream, v.entity.Value(i), v.ws.millis(i), v.we.millis(i), v.modelVersion(i))
	}
	idArr := newArray(resultIDType, n, nil, ids)
	defer idArr.Release()

	cols := []arrow.Array{idArr}
	sc := b.Rec.Schema()
	var model, fallback, event arrow.Array
	for i, f := range sc.Fields() {
		switch {
		case dropped(f.Name):
		case f.Name == ColModelVersion:
			model = b.Rec.Column(i)
		case f.Name == ColFallback:
			fallback = b.Rec.Column(i)
		case f.Name == ColEventTime:
			event = b.Rec.Column(i)
		default:
			cols = append(cols, b.Rec.Column(i))
		}
	}
	var release []arrow.Array
	if model == nil {
		model = array.MakeArrayOfNull(mem, arrow.BinaryTypes.String, n)
		release = append(release, model)
	}
	if fallback == nil {
		fallback = array.MakeArrayOfNull(mem, arrow.FixedWidthTypes.Boolean, n)
		release = append(release, fallback)
	}
	if event == nil {
		event = array.MakeArrayOfNull(mem, arrow.FixedWidthTypes.Timestamp_ms, n)
		release = append(release, event)
	}
	stamps := make([]arrow.Timestamp, n)
	now := arrow.Timestamp(h.o.Now().UnixMilli())
	for i := range stamps {
		stamps[i] = now
	}
	proc := newArray(arrow.FixedWidthTypes.Timestamp_ms, n, nil, arrow.TimestampTraits.CastToBytes(stamps))
	release = append(release, proc)
	cols = append(cols, model, fallback, event, proc)
	rec := array.NewRecordBatch(h.outputSchema(sc, model, fallback, event), cols, int64(n))
	for _, a := range release {
		a.Release()
	}
	return rec
}

// resultIDType is the Arrow type of the result_id column in Parquet files.
var resultIDType = &arrow.FixedSizeBinaryType{ByteWidth: resultIDBytes}

// newArray wraps Go-allocated buffers (validity bitmap first) as an array.
func newArray(dt arrow.DataType, n int, buffers ...[]byte) arrow.Array {
	bufs := make([]*memory.Buffer, len(buffers))
	for i, b := range buffers {
		if b != nil {
			bufs[i] = memory.NewBufferBytes(b)
		}
	}
	d := array.NewData(dt, n, bufs, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// outputSchema is the schema output gives a batch of input schema in: the
// same for every batch of one input schema, so it is kept between batches.
func (h *s3Handler) outputSchema(in *arrow.Schema, model, fallback, event arrow.Array) *arrow.Schema {
	if h.outSchema != nil && (h.outFor == in || h.outFor.Equal(in)) {
		return h.outSchema
	}
	fields := []arrow.Field{{Name: ColResultID, Type: resultIDType}}
	for _, f := range in.Fields() {
		switch {
		case dropped(f.Name), f.Name == ColModelVersion, f.Name == ColFallback, f.Name == ColEventTime:
		default:
			fields = append(fields, arrow.Field{Name: f.Name, Type: f.Type, Nullable: f.Nullable})
		}
	}
	fields = append(fields,
		arrow.Field{Name: ColModelVersion, Type: model.DataType(), Nullable: true},
		arrow.Field{Name: ColFallback, Type: fallback.DataType(), Nullable: true},
		arrow.Field{Name: ColEventTime, Type: event.DataType(), Nullable: true},
		arrow.Field{Name: ColProcessingTime, Type: arrow.FixedWidthTypes.Timestamp_ms, Nullable: false},
	)
	h.outSchema, h.outFor = arrow.NewSchema(fields, nil), in
	return h.outSchema
}

// partition is the Hive partition path of a row, from its window start.
func partition(stream string, windowStartNanos int64) string {
	return strings.TrimSuffix(ResultsPartition(stream, time.Unix(0, windowStartNanos)), "/")
}
