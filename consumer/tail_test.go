package consumer

import (
	"crypto/md5"
	"math/big"
	"testing"
)

// A split's children each keep the parent's records that Kinesis would
// route to them: by the MD5 of the partition key, or by the explicit hash
// key when the KPL set one.
func TestHashFilterRoutesLikeKinesis(t *testing.T) {
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	top := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	lower, err := hashFilter("0", new(big.Int).Sub(half, big.NewInt(1)).String())
	if err != nil {
		t.Fatal(err)
	}
	upper, err := hashFilter(half.String(), top.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"press-001", "press 17 ñ東京", "", "user-42"} {
		sum := md5.Sum([]byte(key))
		inUpper := new(big.Int).SetBytes(sum[:]).Cmp(half) >= 0
		r := &Record{PartitionKey: key}
		if lower(r) == inUpper || upper(r) != inUpper {
			t.Errorf("key %q: lower %v upper %v, its hash is in the upper half: %v", key, lower(r), upper(r), inUpper)
		}
	}
	r := &Record{PartitionKey: "anything", ExplicitHashKey: half.String()}
	if lower(r) || !upper(r) {
		t.Errorf("explicit hash key %s: lower %v upper %v", half, lower(r), upper(r))
	}
	all, err := hashFilter("", "")
	if err != nil || !all(r) {
		t.Error("no range known must keep everything")
	}
	if _, err := hashFilter("12x", "5"); err == nil {
		t.Error("a non-decimal range was accepted")
	}
}
