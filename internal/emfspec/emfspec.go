// Package emfspec checks lines against the required structure of
// CloudWatch's Embedded Metric Format: what the CloudWatch agent and Lambda
// need to turn a log line into metrics. The sinks and lambda tests check
// every EMF line they produce with it.
package emfspec

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Check validates one EMF line and returns its decoded root object. The
// rules are the specification's: an `_aws` object with an epoch-millisecond
// Timestamp and a non-empty CloudWatchMetrics array; per directive a
// Namespace (1 to 256 characters), dimension sets of at most 30 names each
// naming a string member of the root, and at most 100 metrics, each named
// (1 to 1,024 characters), with an optional string Unit and a root member
// that is a number or an array of 1 to 100 numbers.
func Check(line []byte) (map[string]any, error) {
	var root map[string]any
	if err := json.Unmarshal(line, &root); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w: %s", err, line)
	}
	aw, ok := root["_aws"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no _aws object: %s", line)
	}
	if ts, ok := aw["Timestamp"].(float64); !ok || ts < 1e12 {
		return nil, fmt.Errorf("_aws.Timestamp must be epoch milliseconds: %v", aw["Timestamp"])
	}
	directives, ok := aw["CloudWatchMetrics"].([]any)
	if !ok || len(directives) == 0 {
		return nil, fmt.Errorf("_aws.CloudWatchMetrics must be a non-empty array: %s", line)
	}
	for _, d := range directives {
		if err := checkDirective(root, d); err != nil {
			return nil, err
		}
	}
	return root, nil
}

func checkDirective(root map[string]any, d any) error {
	dir, ok := d.(map[string]any)
	if !ok {
		return errors.New("a CloudWatchMetrics directive is not an object")
	}
	if ns, ok := dir["Namespace"].(string); !ok || ns == "" || len(ns) > 256 {
		return fmt.Errorf("directive namespace %v: want 1 to 256 characters", dir["Namespace"])
	}
	sets, ok := dir["Dimensions"].([]any)
	if !ok {
		return errors.New("directive dimensions must be an array of dimension sets")
	}
	for _, set := range sets {
		names, ok := set.([]any)
		if !ok || len(names) > 30 {
			return fmt.Errorf("a dimension set must be an array of at most 30 names: %v", set)
		}
		for _, n := range names {
			name, _ := n.(string)
			if v, ok := root[name].(string); !ok || v == "" {
				return fmt.Errorf("dimension %v has no string member in the root", n)
			}
		}
	}
	metrics, ok := dir["Metrics"].([]any)
	if !ok || len(metrics) > 100 {
		return errors.New("directive metrics must be an array of at most 100")
	}
	for _, m := range metrics {
		md, ok := m.(map[string]any)
		if !ok {
			return fmt.Errorf("a metric definition is not an object: %v", m)
		}
		name, ok := md["Name"].(string)
		if !ok || name == "" || len(name) > 1024 {
			return fmt.Errorf("metric Name: %v", md["Name"])
		}
		if u, ok := md["Unit"]; ok {
			if _, ok := u.(string); !ok {
				return fmt.Errorf("metric %s: Unit must be a string", name)
			}
		}
		switch v := root[name].(type) {
		case float64:
		case []any:
			if len(v) == 0 || len(v) > 100 {
				return fmt.Errorf("metric %s has %d values, must be 1..100", name, len(v))
			}
			for _, x := range v {
				if _, ok := x.(float64); !ok {
					return fmt.Errorf("metric %s value %v is not a number", name, x)
				}
			}
		default:
			return fmt.Errorf("metric %s has no numeric member in the root: %v", name, root[name])
		}
	}
	return nil
}
