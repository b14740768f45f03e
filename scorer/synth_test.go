package scorer

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// synthModel writes an XGBoost 1.7-style JSON model of full binary trees
// with random splits, including the statistics arrays XGBoost writes, so
// loading cost is realistic.
func synthModel(trees, depth, features int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	b.WriteString(`{"learner":{"attributes":{},"feature_names":[`)
	for j := range features {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d"`, j)
	}
	b.WriteString(`],"feature_types":[],"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"`)
	b.WriteString(strconv.Itoa(trees))
	b.WriteString(`","size_leaf_vector":"0"},"tree_info":[`)
	for t := range trees {
		if t > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('0')
	}
	b.WriteString(`],"trees":[`)
	nodes := 1<<(depth+1) - 1
	internal := 1<<depth - 1
	arr := func(name string, f func(i int) string) {
		fmt.Fprintf(&b, `"%s":[`, name)
		for i := range nodes {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f(i))
		}
		b.WriteString(`],`)
	}
	fl := func(v float64) string { return strconv.FormatFloat(float64(float32(v)), 'E', -1, 32) }
	for t := range trees {
		if t > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		arr("base_weights", func(int) string { return fl(r.NormFloat64()) })
		b.WriteString(`"categories":[],"categories_nodes":[],"categories_segments":[],"categories_sizes":[],`)
		arr("default_left", func(int) string { return strconv.Itoa(r.IntN(2)) })
		fmt.Fprintf(&b, `"id":%d,`, t)
		arr("left_children", func(i int) string {
			if i >= internal {
				return "-1"
			}
			return strconv.Itoa(2*i + 1)
		})
		arr("loss_changes", func(int) string { return fl(r.Float64() * 100) })
		arr("parents", func(i int) string {
			if i == 0 {
				return "2147483647"
			}
			return strconv.Itoa((i - 1) / 2)
		})
		arr("right_children", func(i int) string {
			if i >= internal {
				return "-1"
			}
			return strconv.Itoa(2*i + 2)
		})
		arr("split_conditions", func(i int) string {
			if i >= internal {
				return fl(r.NormFloat64() * 0.1)
			}
			return fl(r.NormFloat64())
		})
		arr("split_indices", func(i int) string {
			if i >= internal {
				return "0"
			}
			return strconv.Itoa(r.IntN(features))
		})
		arr("split_type", func(int) string { return "0" })
		arr("sum_hessian", func(int) string { return fl(r.Float64() * 50) })
		fmt.Fprintf(&b, `"tree_param":{"num_deleted":"0","num_feature":"%d","num_nodes":"%d","size_leaf_vector":"0"}}`, features, nodes)
	}
	fmt.Fprintf(&b, `]},"name":"gbtree"},"learner_model_param":{"base_score":"5E-1","boost_from_average":"1","num_class":"0","num_feature":"%d","num_target":"1"},"objective":{"name":"binary:logistic","reg_loss_param":{"scale_pos_weight":"1"}}},"version":[1,7,4]}`, features)
	return b.Bytes()
}

func mustParse(t testing.TB, data []byte, opts ...LoadOption) *Model {
	t.Helper()
	m, err := ParseModel(data, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randomCols returns n rows of standard normal features with NaN at rate miss.
func randomCols(features, n int, miss float64, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 3))
	cols := make([][]float64, features)
	for j := range cols {
		cols[j] = make([]float64, n)
		for i := range cols[j] {
			if r.Float64() < miss {
				cols[j][i] = math.NaN()
			} else {
				cols[j][i] = r.NormFloat64()
			}
		}
	}
	return cols
}

// recordOf builds an Arrow batch of nullable float64 columns (NaN -> null)
// named after names.
func recordOf(t testing.TB, names []string, cols [][]float64) arrow.RecordBatch {
	t.Helper()
	fields := make([]arrow.Field, len(names))
	arrs := make([]arrow.Array, len(names))
	mem := memory.NewGoAllocator()
	for j, name := range names {
		fields[j] = arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
		bld := array.NewFloat64Builder(mem)
		for _, v := range cols[j] {
			if math.IsNaN(v) {
				bld.AppendNull()
			} else {
				bld.Append(v)
			}
		}
		arrs[j] = bld.NewArray()
		bld.Release()
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(len(cols[0])))
	for _, a := range arrs {
		a.Release()
	}
	t.Cleanup(rec.Release)
	return rec
}

func featureNames(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = "f" + strconv.Itoa(i)
	}
	return s
}

func nan() float64 { return math.NaN() }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
