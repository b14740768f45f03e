package shardpos

import "testing"

func TestCompare(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b Position
		want int
	}{
		{Position{"9", 0}, Position{"10", 0}, -1},
		{Position{"10", 0}, Position{"9", 5}, 1},
		{Position{"123", 1}, Position{"123", 2}, -1},
		{Position{"123", 2}, Position{"123", 2}, 0},
		{Position{"124", 0}, Position{"123", 9}, 1},
		{Position{"", 0}, Position{"1", 0}, -1},
		{Position{"49590338271490256608559692538361571095921575989136588898", 0}, Position{"49590338271490256608559692538361571095921575989136588899", 0}, -1},
	} {
		if got := c.a.Compare(c.b); got != c.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := c.b.Compare(c.a); got != -c.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	if got := (Position{"123", 4}).String(); got != "123.4" {
		t.Fatalf("String() = %q, want 123.4", got)
	}
	if !(Position{}).IsZero() || (Position{SubSequence: 1}).IsZero() {
		t.Fatal("IsZero is wrong")
	}
}
