package consumer

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// kplMagic starts every KPL-aggregated Kinesis record.
var kplMagic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// ErrDeaggregation is wrapped by Record.Err when a record that starts with
// the KPL magic bytes cannot be deaggregated.
var ErrDeaggregation = errors.New("consumer: KPL deaggregation failed")

// internLimit bounds the per-shard partition-key cache: past it the cache is
// emptied, so high-cardinality keys cost one allocation each instead of
// growing memory without bound.
const internLimit = 1 << 14

// deaggregator splits KPL aggregates into user records. It keeps scratch
// tables between calls so that steady-state deaggregation allocates nothing
// per record. One deaggregator serves one shard; it is not safe for
// concurrent use.
type deaggregator struct {
	pkTable  [][]byte
	ehkTable [][]byte
	intern   map[string]string
}

func newDeaggregator() *deaggregator {
	return &deaggregator{intern: make(map[string]string)}
}

// str returns b as a string, reusing an earlier identical string: partition
// keys repeat across aggregates, and converting each one would allocate per
// record.
func (d *deaggregator) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	if len(d.intern) >= internLimit {
		clear(d.intern)
	}
	s := string(b)
	d.intern[s] = s
	return s
}

// Deaggregator splits KPL aggregates into user records for code that reads
// Kinesis records itself instead of through a Consumer, such as a Lambda
// function behind a Kinesis event source mapping (Lambda hands the function
// aggregates exactly as the producer wrote them). The records come out as
// a Consumer delivers them: sub-sequence numbers, partition and explicit
// hash keys from the aggregate's tables, and an aggregate that cannot be
// decoded delivered whole with Err set, never dropped.
//
// A Deaggregator keeps scratch tables between calls so that steady-state
// use allocates nothing per record; it is not safe for concurrent use.
type Deaggregator struct{ d *deaggregator }

// NewDeaggregator returns a Deaggregator.
func NewDeaggregator() *Deaggregator { return &Deaggregator{d: newDeaggregator()} }

// Deaggregate appends the user records held in data, one Kinesis record's
// payload, to dst and returns the extended slice. base carries what every
// user record shares: Stream, ShardID, SequenceNumber, PartitionKey (of
// the Kinesis record; aggregated user records get their own from the
// aggregate) and ApproximateArrival; the other fields of base are ignored.
//
// A record without the KPL framing is appended as it is, with
// SubSequenceNumber 0. An aggregate that fails its checksum or does not
// parse is appended whole (Data is all of data) with Err wrapping
// ErrDeaggregation and naming the sequence number and shard. User
// records' Data alias data.
func (d *Deaggregator) Deaggregate(dst []Record, data []byte, base Record) []Record {
	shared := Record{
		Stream: base.Stream, ShardID: base.ShardID, SequenceNumber: base.SequenceNumber,
		PartitionKey: base.PartitionKey, ApproximateArrival: base.ApproximateArrival,
	}
	dst, _ = d.d.appendRecords(dst, data, shared)
	return dst
}

// isAggregated reports whether data is framed as a KPL aggregate.
func isAggregated(data []byte) bool {
	return len(data) >= len(kplMagic)+md5.Size && bytes.Equal(data[:len(kplMagic)], kplMagic[:])
}

// appendRecords appends the user records contained in data to dst. base
// carries the fields shared by every user record (stream, shard, sequence
// number, partition key of the Kinesis record, arrival time). Records that
// are not aggregated are appended as they are. An aggregate that cannot be
// decoded is appended whole with Err set; the returned count of failures is
// then 1.
func (d *deaggregator) appendRecords(dst []Record, data []byte, base Record) ([]Record, int) {
	if !isAggregated(data) {
		base.Data = data
		return append(dst, base), 0
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return d.fail(dst, data, base, errors.New("MD5 checksum mismatch"))
	}
	n, err := d.scan(body)
	if err != nil {
		return d.fail(dst, data, base, err)
	}
	base.Aggregated = true
	start := len(dst)
	dst = growRecords(dst, n)
	out := dst[start : start+n]
	i := 0
	b := body
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		b = b[l:]
		if num != 3 || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		msg, l := protowire.ConsumeBytes(b)
		b = b[l:]
		r := &out[i]
		*r = base
		r.SubSequenceNumber = uint64(i)
		d.fillRecord(r, msg)
		i++
	}
	return dst, 0
}

func (d *deaggregator) fail(dst []Record, data []byte, base Record, cause error) ([]Record, int) {
	base.Data = data
	base.Err = fmt.Errorf("%w: record %s in shard %s: %v", ErrDeaggregation, base.SequenceNumber, base.ShardID, cause)
	return append(dst, base), 1
}

// growRecords extends dst by n elements, reusing capacity.
func growRecords(dst []Record, n int) []Record {
	if need := len(dst) + n; need > cap(dst) {
		grown := make([]Record, len(dst), max(need, 2*cap(dst)))
		copy(grown, dst)
		dst = grown
	}
	return dst[:len(dst)+n]
}

// scan validates the whole aggregate and loads its key tables before any
// user record is emitted, so a malformed aggregate is delivered whole
// instead of half-deaggregated. It returns the number of user records.
func (d *deaggregator) scan(body []byte) (int, error) {
	d.pkTable = d.pkTable[:0]
	d.ehkTable = d.ehkTable[:0]
	var records int
	b := body
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, fmt.Errorf("aggregate: %w", protowire.ParseError(l))
		}
		b = b[l:]
		switch {
		case num == 1 && typ == protowire.BytesType, num == 2 && typ == protowire.BytesType:
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return 0, fmt.Errorf("aggregate key table: %w", protowire.ParseError(l))
			}
			b = b[l:]
			if num == 1 {
				d.pkTable = append(d.pkTable, v)
			} else {
				d.ehkTable = append(d.ehkTable, v)
			}
		case num == 3 && typ == protowire.BytesType:
			_, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return 0, fmt.Errorf("aggregate user record %d: %w", records, protowire.ParseError(l))
			}
			b = b[l:]
			records++
		default:
			l := protowire.ConsumeFieldValue(num, typ, b)
			if l < 0 {
				return 0, fmt.Errorf("aggregate field %d: %w", num, protowire.ParseError(l))
			}
			b = b[l:]
		}
	}
	if records == 0 {
		return 0, errors.New("aggregate holds no user records")
	}
	// Second look at each user record, now that both key tables are known.
	i := 0
	b = body
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		b = b[l:]
		if num != 3 || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		msg, l := protowire.ConsumeBytes(b)
		b = b[l:]
		if err := d.checkRecord(msg); err != nil {
			return 0, fmt.Errorf("aggregate user record %d: %w", i, err)
		}
		i++
	}
	return records, nil
}

// checkRecord validates one protobuf Record message: required
// partition_key_index and data present, indices in range.
func (d *deaggregator) checkRecord(msg []byte) error {
	var havePK, haveData bool
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return protowire.ParseError(l)
		}
		msg = msg[l:]
		switch {
		case (num == 1 || num == 2) && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(msg)
			if l < 0 {
				return protowire.ParseError(l)
			}
			msg = msg[l:]
			if num == 1 {
				if v >= uint64(len(d.pkTable)) {
					return fmt.Errorf("partition_key_index %d out of range (table has %d)", v, len(d.pkTable))
				}
				havePK = true
			} else if v >= uint64(len(d.ehkTable)) {
				return fmt.Errorf("explicit_hash_key_index %d out of range (table has %d)", v, len(d.ehkTable))
			}
		case num == 3 && typ == protowire.BytesType:
			_, l := protowire.ConsumeBytes(msg)
			if l < 0 {
				return protowire.ParseError(l)
			}
			msg = msg[l:]
			haveData = true
		default:
			l := protowire.ConsumeFieldValue(num, typ, msg)
			if l < 0 {
				return protowire.ParseError(l)
			}
			msg = msg[l:]
		}
	}
	if !havePK {
		return errors.New("missing partition_key_index")
	}
	if !haveData {
		return errors.New("missing data")
	}
	return nil
}

// fillRecord sets the per-user-record fields from a Record message that
// checkRecord accepted.
func (d *deaggregator) fillRecord(r *Record, msg []byte) {
	r.ExplicitHashKey = ""
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		msg = msg[l:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(msg)
			msg = msg[l:]
			r.PartitionKey = d.str(d.pkTable[v])
		case num == 2 && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(msg)
			msg = msg[l:]
			r.ExplicitHashKey = d.str(d.ehkTable[v])
		case num == 3 && typ == protowire.BytesType:
			v, l := protowire.ConsumeBytes(msg)
			msg = msg[l:]
			r.Data = v
		default:
			msg = msg[protowire.ConsumeFieldValue(num, typ, msg):]
		}
	}
}
