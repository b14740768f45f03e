package dataset

// Reading a baseline: Model Monitor's statistics.json and constraints.json
// (or ours, which have its layout), from a directory or an S3 prefix. The
// CLI's `monitor check` and the in-stream monitor both read theirs here.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/streamscore/streamscore/internal/retry"
	"github.com/streamscore/streamscore/monitor"
)

// maxBaselineFile bounds what a baseline file may hold: statistics of a
// few hundred features with full sketches are well under it, and a
// pipeline must not run out of memory on a wrong path.
const maxBaselineFile = 64 << 20

// A pipeline reads its baseline once, when it starts: a passing S3 failure
// (beyond the SDK's own retries) should not stop it, an absent file or a
// refused request does at once.
var baselineRetry = retry.Policy{Base: 200 * time.Millisecond, Cap: 10 * time.Second}

const baselineAttempts = 5

// LoadBaseline reads the baseline at where: statistics.json and
// constraints.json in a local directory, or under an S3 prefix
// (s3://bucket/prefix, with or without the trailing slash; c may be nil
// for a directory). A baseline without constraints.json is judged by the
// constraints Model Monitor's baselining job would suggest for its
// statistics (monitor.Suggest), so statistics made elsewhere are enough.
// Errors name the file.
func LoadBaseline(ctx context.Context, c S3, where string) (*monitor.Statistics, *monitor.Constraints, error) {
	if where == "" {
		return nil, nil, errors.New("no baseline: want a directory or an s3:// prefix holding " + StatisticsFile + " and " + ConstraintsFile)
	}
	sb, sname, err := baselineFile(ctx, c, where, StatisticsFile)
	if err != nil {
		return nil, nil, err
	}
	st, err := monitor.ReadStatistics(bytes.NewReader(sb), sname)
	if err != nil {
		return nil, nil, err
	}
	cb, cname, err := baselineFile(ctx, c, where, ConstraintsFile)
	if Absent(err) {
		return st, monitor.Suggest(st), nil
	}
	if err != nil {
		return nil, nil, err
	}
	cs, err := monitor.ReadConstraints(bytes.NewReader(cb), cname)
	if err != nil {
		return nil, nil, err
	}
	return st, cs, nil
}

// baselineFile reads the file name of the baseline at where (a directory
// or an S3 prefix), returning the path or URI that names it in errors:
// where LoadBaseline and LoadQualityBaseline both find their files.
func baselineFile(ctx context.Context, c S3, where, name string) ([]byte, string, error) {
	if !IsS3(where) {
		p := filepath.Join(where, name)
		b, err := readLocal(p)
		return b, p, err
	}
	bucket, prefix, err := parseS3(where)
	if err != nil {
		return nil, where, err
	}
	if c == nil {
		return nil, where, fmt.Errorf("%s: no S3 client to read the baseline with", where)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	b, err := ReadObject(ctx, c, bucket, prefix+name)
	return b, s3Scheme + bucket + "/" + prefix + name, err
}

// Absent reports whether err says a file or an object is not there (a
// local file, or S3's NoSuchKey, NotFound or 404, as HeadObject says it).
func Absent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if code, ok := errors.AsType[smithy.APIError](err); ok {
		switch code.ErrorCode() {
		case "NoSuchKey", "NotFound", "404":
			return true
		}
	}
	return false
}

func readLocal(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err // a *fs.PathError, naming the file
	}
	defer f.Close()
	return readBounded(f, p)
}

// ReadObject reads a monitor file from S3 (a baseline's, a period's part),
// at most 64 MiB, retrying what may pass; errors name its s3:// URI.
func ReadObject(ctx context.Context, c S3, bucket, key string) ([]byte, error) {
	uri := s3Scheme + bucket + "/" + key
	b := retry.NewBackoff(baselineRetry)
	for {
		body, err := func() ([]byte, error) {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				return nil, err
			}
			defer out.Body.Close()
			return io.ReadAll(io.LimitReader(out.Body, maxBaselineFile+1))
		}()
		if err == nil {
			return bounded(body, uri)
		}
		if !retry.Classify(err).Retryable() || b.Attempt() >= baselineAttempts {
			return nil, fmt.Errorf("%s: %w", uri, err)
		}
		if !b.Wait(ctx) {
			return nil, fmt.Errorf("%s: %w", uri, errors.Join(err, ctx.Err()))
		}
	}
}

func readBounded(r io.Reader, name string) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxBaselineFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return bounded(body, name)
}

func bounded(body []byte, name string) ([]byte, error) {
	if len(body) > maxBaselineFile {
		return nil, fmt.Errorf("%s: over %d MiB, too large for a baseline file", name, maxBaselineFile>>20)
	}
	return body, nil
}
