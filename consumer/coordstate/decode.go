package coordstate

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DecodeError reports an item that does not have the shape Java KCL writes:
// which table, which item (by its key) and which attribute.
type DecodeError struct {
	Table string
	Key   string
	Attr  string // attribute path, e.g. sts["C"][2]
	Err   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("table %s item %q attribute %s: %v", e.Table, e.Key, e.Attr, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// errMissing marks a required attribute that is absent.
var errMissing = errors.New("missing")

func typeName(av types.AttributeValue) string {
	switch av.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", av)
}

func wrongType(want string, av types.AttributeValue) error {
	return fmt.Errorf("want %s, got %s", want, typeName(av))
}

// str returns a required S attribute.
func str(item map[string]types.AttributeValue, attr string) (string, error) {
	av, ok := item[attr]
	if !ok {
		return "", errMissing
	}
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return "", wrongType("S", av)
	}
	return s.Value, nil
}

// optStr returns an optional S attribute; ok is false when it is absent.
func optStr(item map[string]types.AttributeValue, attr string) (v string, ok bool, err error) {
	if _, present := item[attr]; !present {
		return "", false, nil
	}
	v, err = str(item, attr)
	return v, err == nil, err
}

// num returns the text of an N value, checked against DynamoDB's number
// syntax: the server only ever returns that, and Java's parsers reject
// everything else.
func num(av types.AttributeValue) (string, error) {
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return "", wrongType("N", av)
	}
	if !numberSyntax(n.Value) {
		return "", fmt.Errorf("%q is not a number", n.Value)
	}
	return n.Value, nil
}

// numberSyntax accepts [-]digits[.digits][(e|E)[+|-]digits], and .digits
// without leading digits.
func numberSyntax(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 || exp > 3 {
			return false
		}
	}
	return i == len(s)
}

// float decodes an N as a Java Double.
func float(av types.AttributeValue) (float64, error) {
	s, err := num(av)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is out of range for a double", s)
	}
	return f, nil
}

// integer decodes an N as a Java Long. Besides plain integers it accepts
// any spelling of an integral value ("100.0", "1E2"), since what matters is
// the number DynamoDB stores, not how a writer spelled it.
func integer(av types.AttributeValue) (int64, error) {
	s, err := num(av)
	if err != nil {
		return 0, err
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	var r big.Rat
	if _, ok := r.SetString(s); !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q is not an integer of 64 bits", s)
	}
	return r.Num().Int64(), nil
}

func optInteger(item map[string]types.AttributeValue, attr string) (v int64, ok bool, err error) {
	av, present := item[attr]
	if !present {
		return 0, false, nil
	}
	v, err = integer(av)
	return v, err == nil, err
}

// formatFloat spells a double for DynamoDB: plain decimals where that is
// short, exponent form otherwise, never more than 17 significant digits
// (DynamoDB keeps 38).
func formatFloat(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("%v cannot be stored in DynamoDB", f)
	}
	if a := math.Abs(f); a != 0 && (a >= 1e125 || a < 1e-125) {
		return "", fmt.Errorf("%v is outside DynamoDB's number range", f)
	}
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	return strconv.FormatFloat(f, 'E', -1, 64), nil
}

func nInt(v int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func sVal(v string) *types.AttributeValueMemberS {
	return &types.AttributeValueMemberS{Value: v}
}
