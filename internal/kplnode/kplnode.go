// Package kplnode aggregates user records into KPL aggregated records with
// AWS Labs' npm aws-kinesis-agg, run through Node. Tests use it to check
// that the Go deaggregator (consumer) and the code built on it (the login
// Lambda) read what the real producer library writes.
package kplnode

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed kpl-aggregate.js
var script string

// Record is a Kinesis record as aws-kinesis-agg takes and gives it.
type Record struct {
	PartitionKey    string `json:"partitionKey"`
	ExplicitHashKey string `json:"explicitHashKey,omitempty"`
	Data            []byte `json:"data"`
}

// Aggregate encodes each chunk of user records into aggregated records
// (more than one when a chunk exceeds the record size limit), in order.
// nodeModules is the node_modules folder holding aws-kinesis-agg.
func Aggregate(nodeModules string, chunks [][]Record) ([]Record, error) {
	if _, err := os.Stat(filepath.Join(nodeModules, "aws-kinesis-agg")); err != nil {
		return nil, fmt.Errorf("aws-kinesis-agg is not installed in %s (run `streamscore dev install`): %w", nodeModules, err)
	}
	in, err := json.Marshal(chunks)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("node", "-e", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node kpl-aggregate.js: %w\n%s", err, stderr.String())
	}
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("kpl-aggregate.js output %q: %w", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}
