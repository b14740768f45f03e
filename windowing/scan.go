package windowing

// The JSON scanning primitives the decoder is built on: strings, escapes,
// numbers and literals, checked byte by byte without allocating.

import (
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// scanString returns the index just past the closing quote of the string
// starting at r[p] == '"', whether it holds escapes, and whether it is valid
// (closed, no raw control characters, well-formed escapes).
func scanString(r []byte, p int) (end int, esc bool, ok bool) {
	for i := p + 1; i < len(r); i++ {
		c := r[i]
		switch {
		case c == '"':
			return i + 1, esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(r) {
				return 0, false, false
			}
			switch r[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(r) {
					return 0, false, false
				}
				for k := 1; k <= 4; k++ {
					if !isHex(r[i+k]) {
						return 0, false, false
					}
				}
				i += 4
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		}
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(b []byte) rune {
	var v rune
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			v |= rune(c - 'a' + 10)
		default:
			v |= rune(c - 'A' + 10)
		}
	}
	return v
}

// unescape appends the decoded contents of the valid JSON string s (without
// its quotes) to dst, the way encoding/json does (lone surrogates become
// U+FFFD).
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexVal(s[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 = hexVal(s[i+3 : i+7])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, s[i])
		}
	}
	return dst
}

// scanNumber returns the end of the JSON number at r[p], and whether it has
// a fraction or exponent.
func scanNumber(r []byte, p int) (end int, isFloat bool, ok bool) {
	i := p
	if i < len(r) && r[i] == '-' {
		i++
	}
	if i >= len(r) {
		return 0, false, false
	}
	if r[i] == '0' {
		i++
	} else if r[i] >= '1' && r[i] <= '9' {
		for i < len(r) && r[i] >= '0' && r[i] <= '9' {
			i++
		}
	} else {
		return 0, false, false
	}
	if i < len(r) && r[i] == '.' {
		isFloat = true
		i++
		s := i
		for i < len(r) && r[i] >= '0' && r[i] <= '9' {
			i++
		}
		if i == s {
			return 0, false, false
		}
	}
	if i < len(r) && (r[i] == 'e' || r[i] == 'E') {
		isFloat = true
		i++
		if i < len(r) && (r[i] == '+' || r[i] == '-') {
			i++
		}
		s := i
		for i < len(r) && r[i] >= '0' && r[i] <= '9' {
			i++
		}
		if i == s {
			return 0, false, false
		}
	}
	return i, isFloat, true
}

// bstr views b as a string without copying; the string must not outlive
// the call it is passed to.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func hasLiteral(r []byte, p int, lit string) bool {
	return len(r)-p >= len(lit) && string(r[p:p+len(lit)]) == lit
}
