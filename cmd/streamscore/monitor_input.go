package main

// Where `streamscore monitor` reads from: a local file or directory, an S3
// object, or every object under an S3 prefix (the S3 sink's results
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

	"github.com/streamscore/streamscore/worker"
)

// objectStore is what the monitor command needs of S3.
type objectStore interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	s3.ListObjectsV2APIClient
}

var _ objectStore = (*s3.Client)(nil)

// defaultStore is the S3 client from the SDK's default chain, the one every
// other command uses (AWS_ENDPOINT_URL_S3 points it at a local server).
func defaultStore(ctx context.Context) (objectStore, error) {
	c, err := worker.LoadAWS(ctx)
	if err != nil {
		return nil, err
	}
	return c.S3, nil
}

// inputObject is one file or S3 object of the input.
type inputObject struct {
	// name is the path or s3:// URI, as errors show it.
	name string
	// path is set for local files, which Parquet reads in place.
	path string
	open func(ctx context.Context) (io.ReadCloser, error)
}

// listInput resolves --input into the objects to read, in name order.
// Names starting with "_" or "." are skipped under a directory or prefix,
// as Hive, Spark and Athena skip them (_SUCCESS markers, temporary files).
func listInput(ctx context.Context, input string, store func(context.Context) (objectStore, error)) ([]inputObject, error) {
	if input == "" {
		return nil, errors.New("--input is required: a CSV or Parquet file, a directory, or an s3:// URI")
	}
	if strings.HasPrefix(input, "s3://") {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(input, "s3://"), "/")
		if bucket == "" {
			return nil, fmt.Errorf("--input %s: no bucket (want s3://bucket/key or s3://bucket/prefix/)", input)
		}
		c, err := store(ctx)
		if err != nil {
			return nil, fmt.Errorf("--input %s: %w", input, err)
		}
		if key == "" || strings.HasSuffix(key, "/") {
			return listPrefix(ctx, c, bucket, key)
		}
		return []inputObject{s3Object(c, bucket, key)}, nil
	}
	st, err := os.Stat(input)
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	if !st.IsDir() {
		return []inputObject{localFile(input)}, nil
	}
	var out []inputObject
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
		return nil, fmt.Errorf("--input %s: %w", input, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--input %s: no files in the directory", input)
	}
	return out, nil
}

func hidden(name string) bool { return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") }

func localFile(p string) inputObject {
	return inputObject{name: p, path: p, open: func(context.Context) (io.ReadCloser, error) { return os.Open(p) }}
}

func s3Object(c objectStore, bucket, key string) inputObject {
	uri := "s3://" + bucket + "/" + key
	return inputObject{name: uri, open: func(ctx context.Context) (io.ReadCloser, error) {
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
func listPrefix(ctx context.Context, c objectStore, bucket, prefix string) ([]inputObject, error) {
	var out []inputObject
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") || hiddenBelow(strings.TrimPrefix(key, prefix)) {
				continue
			}
			out = append(out, s3Object(c, bucket, key))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--input s3://%s/%s: no objects under the prefix", bucket, prefix)
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
