package sinks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/streamscore/streamscore/shardpos"
)

// ResultID must follow its documented formula exactly: analysts recompute
// it in SQL, and a change would break deduplication across versions.
func TestResultIDFollowsTheDocumentedFormula(t *testing.T) {
	ws := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	we := ws.Add(5 * time.Minute)
	sum := sha256.Sum256([]byte(fmt.Sprintf("factory\x1fpress-017\x1f%d\x1f%d\x1fxgb-7", ws.UnixMilli(), we.UnixMilli())))
	if got, want := ResultID("factory", "press-017", ws, we, "xgb-7"), hex.EncodeToString(sum[:16]); got != want {
		t.Fatalf("ResultID = %s, want %s", got, want)
	}
	if ResultID("factory", "press-017", ws, we, "xgb-8") == ResultID("factory", "press-017", ws, we, "xgb-7") {
		t.Fatal("a new model version must give a new result_id")
	}
}

func TestPositionCompare(t *testing.T) {
	a := shardpos.Position{Sequence: "999", SubSequence: 5}
	b := shardpos.Position{Sequence: "1000"}
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
		t.Fatal("longer sequence numbers are larger")
	}
	if (shardpos.Position{Sequence: "1000", SubSequence: 1}).Compare(b) != 1 {
		t.Fatal("sub-sequence breaks ties")
	}
}
