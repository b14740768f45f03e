package windowing

// Event-time parsing: epoch seconds or milliseconds, and RFC 3339 with a
// fast path for the common fixed layouts.

import (
	"math"
	"strconv"
	"time"
)

// parseEpoch converts an epoch number in seconds or milliseconds to
// nanoseconds, exactly for plain decimal literals.
func parseEpoch(lit []byte, f TimeFormat) (int64, bool) {
	scale := int64(1e9)
	fracDigits := 9
	if f == TimeEpochMS {
		scale, fracDigits = 1e6, 6
	}
	neg := false
	i := 0
	if lit[0] == '-' {
		neg = true
		i++
	}
	var whole int64
	for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
		if whole > (math.MaxInt64/scale)/10 {
			return 0, false
		}
		whole = whole*10 + int64(lit[i]-'0')
	}
	var frac int64
	if i < len(lit) && lit[i] == '.' {
		i++
		n := 0
		for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
			if n < fracDigits {
				frac = frac*10 + int64(lit[i]-'0')
				n++
			}
		}
		for ; n < fracDigits; n++ {
			frac *= 10
		}
	}
	if i < len(lit) { // exponent: go through float64
		x, err := strconv.ParseFloat(bstr(lit), 64)
		if err != nil {
			return 0, false
		}
		x *= float64(scale)
		if math.IsNaN(x) || x >= math.MaxInt64 || x <= math.MinInt64 {
			return 0, false
		}
		return int64(math.Round(x)), true
	}
	ns := whole*scale + frac
	if ns < 0 {
		return 0, false
	}
	if neg {
		ns = -ns
	}
	return ns, true
}

// parseRFC3339 parses the common shapes ("2026-11-24T10:15:03.250Z",
// "...+01:00") without allocating and falls back to time.Parse for the
// rest, so the accepted language is exactly Go's RFC 3339.
func parseRFC3339(b []byte) (int64, bool) {
	if ns, ok := fastRFC3339(b); ok {
		return ns, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

func digits(b []byte, n int) (int, bool) {
	v := 0
	for i := range n {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func fastRFC3339(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	y, ok1 := digits(b[0:], 4)
	mo, ok2 := digits(b[5:], 2)
	dd, ok3 := digits(b[8:], 2)
	hh, ok4 := digits(b[11:], 2)
	mi, ok5 := digits(b[14:], 2)
	ss, ok6 := digits(b[17:], 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || dd < 1 ||
		dd > daysIn(y, mo) || hh > 23 || mi > 59 || ss > 59 {
		return 0, false
	}
	i := 19
	var frac int64
	if b[i] == '.' {
		i++
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if n < 9 {
				frac = frac*10 + int64(b[i]-'0')
			}
			n++
			i++
		}
		if n == 0 || n > 9 {
			return 0, false
		}
		for ; n < 9; n++ {
			frac *= 10
		}
	}
	if i >= len(b) {
		return 0, false
	}
	var zone int64
	switch b[i] {
	case 'Z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, false
		}
		zh, ok1 := digits(b[i+1:], 2)
		zm, ok2 := digits(b[i+4:], 2)
		if !ok1 || !ok2 || zh > 23 || zm > 59 {
			return 0, false
		}
		zone = int64(zh*3600 + zm*60)
		if b[i] == '-' {
			zone = -zone
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(b) {
		return 0, false
	}
	secs := daysFromCivil(y, mo, dd)*86400 + int64(hh*3600+mi*60+ss) - zone
	return secs*1e9 + frac, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
