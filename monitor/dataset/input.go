package dataset

// Where the monitor's datasets are read from: a local file or directory,
// an S3 object, or every object under an S3 prefix (the S3 sink's results
// prefix, say). Each object is read as it comes; only Parquet, which is
// read from its footer backwards, is first copied to a local temporary
// file when it does not already sit in one.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3 is what reading datasets and baselines needs of an S3 client. The
// SDK's client satisfies it, and so does the pipeline's.
type S3 interface {
	S3Getter
	s3.ListObjectsV2APIClient
}

// S3Getter is what reading one S3 object by its key needs of a client:
// a caller that lists keys itself (the reducer picking a period's
// partitions) needs no more.
type S3Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// The names Model Monitor gives its files: a baseline is a directory or
// prefix holding the first two; a check's output (and each period's in the
// stream) holds statistics and violations.
const (
	StatisticsFile  = "statistics.json"
	ConstraintsFile = "constraints.json"
	ViolationsFile  = "constraint_violations.json"
)

const s3Scheme = "s3://"

// IsS3 reports whether a location is an s3:// URI, read through an S3
// client; anything else is a local path, which needs none.
func IsS3(where string) bool { return strings.HasPrefix(where, s3Scheme) }

// parseS3 splits an s3:// URI into its bucket and key (or prefix).
func parseS3(uri string) (bucket, key string, err error) {
	bucket, key, _ = strings.Cut(strings.TrimPrefix(uri, s3Scheme), "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%s: no bucket (want s3://bucket/key or s3://bucket/prefix/)", uri)
	}
	return bucket, key, nil
}

// Object is one file or S3 object of an input.
type Object struct {
	// name is the path or s3:// URI, as errors show it.
	name string
	// open returns the object's bytes; a local file's as its *os.File,
	// which Parquet reads in place.
	open func(ctx context.Context) (io.ReadCloser, error)
}

// Name is the object's path or s3:// URI, as errors show it.
func (o Object) Name() string { return o.name }

// Open resolves a location into the objects to read, in name order: a
// local file, every regular file under a local directory, the object at
// s3://bucket/key, or every object under s3://bucket/prefix/ (a URI
// ending in "/", or naming only the bucket). Names starting with "_" or
// "." are skipped under a directory or prefix, as Hive, Spark and Athena
// skip them (_SUCCESS markers, temporary files). c may be nil for a local
// location. Nothing is read yet; an S3 object that is not there is
// reported when it is read.
func Open(ctx context.Context, c S3, input string) ([]Object, error) {
	if input == "" {
		return nil, errors.New("no input: want a CSV or Parquet file, a directory, or an s3:// URI")
	}
	if IsS3(input) {
		bucket, key, err := parseS3(input)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, fmt.Errorf("%s: no S3 client to read it with", input)
		}
		if key == "" || strings.HasSuffix(key, "/") {
			return listPrefix(ctx, c, bucket, key)
		}
		return []Object{S3Object(c, bucket, key)}, nil
	}
	st, err := os.Stat(input)
	if err != nil {
		return nil, err // a *fs.PathError, naming the path
	}
	if !st.IsDir() {
		return []Object{localFile(input)}, nil
	}
	var out []Object
	err = filepath.WalkDir(input, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != input && hidden(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			out = append(out, localFile(p))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", input, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no files in the directory", input)
	}
	return out, nil
}

func hidden(name string) bool { return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") }

func localFile(p string) Object {
	return Object{name: p, open: func(context.Context) (io.ReadCloser, error) { return os.Open(p) }}
}

// S3Object is the object at key in bucket, read through c when a reader
// opens it (nothing is fetched before): for a caller that has listed the
// keys itself. Its name, in errors, is its s3:// URI. Unlike Open, it
// skips no name: the caller chose the key.
func S3Object(c S3Getter, bucket, key string) Object {
	uri := s3Scheme + bucket + "/" + key
	return Object{name: uri, open: func(ctx context.Context) (io.ReadCloser, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			if _, ok := errors.AsType[*s3types.NoSuchKey](err); ok {
				return nil, fmt.Errorf("%s: no such object (end the URI with / to read every object under a prefix): %w", uri, err)
			}
			return nil, fmt.Errorf("%s: %w", uri, err)
		}
		return out.Body, nil
	}}
}

// listPrefix lists every object under prefix, skipping folder markers and
// hidden names in any path segment below the prefix.
func listPrefix(ctx context.Context, c S3, bucket, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s%s/%s: %w", s3Scheme, bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") || hiddenBelow(strings.TrimPrefix(key, prefix)) {
				continue
			}
			out = append(out, S3Object(c, bucket, key))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s%s/%s: no objects under the prefix", s3Scheme, bucket, prefix)
	}
	return out, nil
}

func hiddenBelow(rel string) bool {
	for seg := range strings.SplitSeq(rel, "/") {
		if hidden(seg) {
			return true
		}
	}
	return false
}

// spool copies r into a temporary file for a reader that needs random
// access; remove deletes it.
func spool(name string, r io.Reader) (f *os.File, remove func(), err error) {
	f, err = os.CreateTemp("", "streamscore-monitor-*"+path.Ext(name))
	if err != nil {
		return nil, nil, err
	}
	remove = func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, r); err != nil {
		remove()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, remove, nil
}
