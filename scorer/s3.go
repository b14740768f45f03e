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

// parseS3URI splits s3://bucket/key.
func parseS3URI(uri string) (bucket, key string, err error) {
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

func getS3Object(ctx context.Context, c s3Getter, uri string) ([]byte, string, error) {
	bucket, key, err := parseS3URI(uri)
	if err != nil {
		return nil, "", err
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, "", fmt.Errorf("get object: %w", err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxModelBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read object: %w", err)
	}
	if len(data) > maxModelBytes {
		return nil, "", fmt.Errorf("object is over the %d byte limit", maxModelBytes)
	}
	return data, strings.Trim(aws.ToString(out.ETag), `"`), nil
}

func headS3ETag(ctx context.Context, c s3Getter, uri string) (string, error) {
	bucket, key, err := parseS3URI(uri)
	if err != nil {
		return "", err
	}
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", fmt.Errorf("head object: %w", err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`), nil
}
