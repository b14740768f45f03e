package dataset

// Telling an object's format by its first bytes: the one rule Profile and
// the quality readers (predictions, labels) share, so an input that one
// of them reads as Parquet, gzip or text the other reads so too.

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// The first bytes that tell a format.
const (
	parquetMagic = "PAR1"
	gzipMagic    = "\x1f\x8b"
)

// byFormat hands an opened object, rc named name, to text or pq by its
// format: Parquet's magic, gzip's (then the format of what it holds), else
// text. A name ending in .parquet is read as Parquet whatever it starts
// with, so a damaged file is reported as damaged Parquet, not as a strange
// CSV. Parquet is read from its footer: a local file in place, anything
// else (an S3 object, a gzip stream) from a temporary copy.
func byFormat(name string, rc io.Reader, text func(name string, r *bufio.Reader) error, pq func(name string, f *os.File) error) error {
	br := bufio.NewReaderSize(rc, 64<<10)
	r := br
	head, _ := br.Peek(len(parquetMagic)) // a shorter file is told by what it has
	zipped := strings.HasPrefix(string(head), gzipMagic)
	if zipped {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		zb := bufio.NewReaderSize(zr, 64<<10)
		head, _ = zb.Peek(len(parquetMagic))
		r = zb
	}
	if string(head) != parquetMagic && (zipped || !strings.EqualFold(path.Ext(name), ".parquet")) {
		return text(name, r)
	}
	if f, ok := rc.(*os.File); ok && !zipped {
		return pq(name, f)
	}
	f, remove, err := spool(name, r)
	if err != nil {
		return err
	}
	defer remove()
	return pq(name, f)
}

// guard runs a call into arrow-go's Parquet reader, which panics on some
// corrupt files (a page header that contradicts its page type, found by
// FuzzProfile): that is the file's fault, and is reported as such. Only
// the library's calls are guarded, never the caller's callback.
func guard(name string, call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: corrupt Parquet file: %v", name, r)
		}
	}()
	return call()
}
