package scorer

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

type s3Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// ParseS3URI splits s3://bucket/key, refusing anything else.
func ParseS3URI(uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3:// URI", uri)
	}
	bucket, key, ok = strings.Cut(rest, "/")
	if !ok || bucket == "" || key == "" {
		return "", "", fmt.Errorf("%q: want s3://bucket/key", uri)
	}
	return bucket, key, nil
}

// getS3Object reads the object (the version versionID, if set), refusing
// one over maxBytes before reading it when S3 says its size.
func getS3Object(ctx context.Context, c s3Getter, uri, versionID string, maxBytes int64) ([]byte, string, error) {
	bucket, key, err := ParseS3URI(uri)
	if err != nil {
		return nil, "", err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := c.GetObject(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("get object: %w", err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > maxBytes {
		return nil, "", limitError("the object size", n, "max_file_bytes", maxBytes)
	}
	if versionID != "" && out.VersionId != nil && aws.ToString(out.VersionId) != versionID {
		return nil, "", fmt.Errorf("asked for version %s, S3 returned version %s", versionID, aws.ToString(out.VersionId))
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, maxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read object: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, "", limitError("the object size", int64(len(data)), "max_file_bytes", maxBytes)
	}
	return data, strings.Trim(aws.ToString(out.ETag), `"`), nil
}

func headS3ETag(ctx context.Context, c s3Getter, uri string) (string, error) {
	bucket, key, err := ParseS3URI(uri)
	if err != nil {
		return "", err
	}
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", fmt.Errorf("head object: %w", err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`), nil
}
