package scorer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// chainModel writes an XGBoost JSON model of trees that are chains: at each
// of depth levels one child is a leaf and the other goes on, so a tree has
// 2*depth+1 nodes. Only the arrays the loader needs are written, so the file
// is as small as such a model can be.
func chainModel(trees, depth, features int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"learner":{"attributes":{},"feature_names":[],"feature_types":[],"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"%d","size_leaf_vector":"0"},"tree_info":[`, trees)
	for t := range trees {
		if t > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('0')
	}
	b.WriteString(`],"trees":[`)
	n := 2*depth + 1
	list := func(name string, f func(i int) string) {
		fmt.Fprintf(&b, `"%s":[`, name)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f(i))
		}
		b.WriteString(`],`)
	}
	for t := range trees {
		if t > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		// Split nodes are 0, 2, 4, ...; node 2k's children are 2k+1 (a
		// leaf) and 2k+2; the last node is a leaf.
		split := func(i int) bool { return i%2 == 0 && i < n-1 }
		list("left_children", func(i int) string {
			if split(i) {
				return strconv.Itoa(i + 1)
			}
			return "-1"
		})
		list("right_children", func(i int) string {
			if split(i) {
				return strconv.Itoa(i + 2)
			}
			return "-1"
		})
		list("split_indices", func(i int) string { return strconv.Itoa((i / 2) % features) })
		list("split_conditions", func(i int) string {
			if split(i) {
				return strconv.Itoa(i/2 - depth/2)
			}
			return strconv.Itoa(i%7 - 3)
		})
		list("default_left", func(i int) string { return strconv.Itoa(i / 2 % 2) })
		fmt.Fprintf(&b, `"tree_param":{"num_nodes":"%d","size_leaf_vector":"0"}}`, n)
	}
	fmt.Fprintf(&b, `]},"name":"gbtree"},"learner_model_param":{"base_score":"0","num_class":"0","num_feature":"%d","num_target":"1"},"objective":{"name":"reg:squarederror"}},"version":[1,7,4]}`, features)
	return b.Bytes()
}

// chainPredict is the reference walk of chainModel's trees.
func chainPredict(trees, depth, features int, x []float64) float64 {
	n := 2*depth + 1
	var sum float32
	for range trees {
		id := 0
		for id%2 == 0 && id < n-1 {
			v, thr := x[(id/2)%features], float64(id/2-depth/2)
			left := v < thr
			if v != v {
				left = id/2%2 == 1
			}
			if left {
				id++
			} else {
				id += 2
			}
		}
		sum += float32(id%7 - 3)
	}
	return float64(sum)
}

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Chain trees of depth 12 once took their complete layout (8,191 slots,
// 64 KB each, for 25 nodes), so a 2 MB file became ~145 MB of heap. Sparse
// trees now keep XGBoost's layout: the model's live heap stays a small
// multiple of its file, and it predicts exactly as the trees say.
func TestChainTreesDoNotAmplifyHeap(t *testing.T) {
	const depth, features = 12, 5
	one := len(chainModel(2, depth, features)) - len(chainModel(1, depth, features))
	trees := (2 << 20) / one
	data := chainModel(trees, depth, features)
	before := heapAfterGC()
	m, err := ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	live := int64(heapAfterGC()) - int64(before)
	complete := int64(trees) * completeTreeBytes(depth)
	t.Logf("%d chain trees of depth %d: %d byte file, %d bytes live after load (the complete layout would keep %d)",
		trees, depth, len(data), live, complete)
	if live > 4*int64(len(data)) {
		t.Errorf("a %d byte model keeps %d bytes live (%.1fx), want at most 4x", len(data), live, float64(live)/float64(len(data)))
	}
	if m.Info().MaxDepth != depth || m.Info().Trees != trees {
		t.Fatalf("info %+v", m.Info())
	}
	cols := randomCols(features, 64, 0.1, 9)
	for j := range cols {
		cols[j][0] = float64(j) - 2 // exactly at thresholds
	}
	out := alloc(1, 64)
	var s Scratch
	if err := m.Predict(cols, 64, out, &s); err != nil {
		t.Fatal(err)
	}
	x := make([]float64, features)
	for i := range 64 {
		for j := range x {
			x[j] = cols[j][i]
		}
		if want := chainPredict(trees, depth, features, x); out[0][i] != want {
			t.Fatalf("row %d: %v, want %v", i, out[0][i], want)
		}
	}
	runtime.KeepAlive(m)
	runtime.KeepAlive(data)
}

func tarGz(t *testing.T, members map[string][]byte, order []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range order {
		b := members[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// Every limit refuses with an error that wraps ErrModelLimit and names the
// limit and the file.
func TestModelLimitsNameLimitAndFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	model := chainModel(10, 12, 5)
	plain := write("chain.json", model)
	bomb := write("bomb.tar.gz", tarGz(t, map[string][]byte{"xgboost-model": model, "pad": make([]byte, 4<<20)}, []string{"pad", "xgboost-model"}))
	many := map[string][]byte{"xgboost-model": model}
	order := []string{"xgboost-model"}
	for i := range 10 {
		name := "extra" + strconv.Itoa(i)
		many[name], order = []byte("x"), append(order, name)
	}
	crowded := write("crowded.tar.gz", tarGz(t, many, order))
	for _, tc := range []struct {
		path  string
		lim   ModelLimits
		limit string
	}{
		{plain, ModelLimits{MaxFileBytes: 1000}, "max_file_bytes"},
		{plain, ModelLimits{MaxTrees: 9}, "max_trees"},
		{plain, ModelLimits{MaxNodes: 249}, "max_nodes"},
		{plain, ModelLimits{MaxDepth: 11}, "max_depth"},
		{plain, ModelLimits{MaxHeapBytes: 2000}, "max_heap_bytes"},
		{bomb, ModelLimits{MaxTarBytes: 1 << 20}, "max_tar_bytes"},
		{bomb, ModelLimits{MaxTarMemberBytes: 1 << 20}, "max_tar_member_bytes"},
		{crowded, ModelLimits{MaxTarMembers: 5}, "max_tar_members"},
		{plain, ModelLimits{MaxFeatures: 4}, "max_features"},
		{"testdata/lightgbm/boosters/multiclass/model.txt", ModelLimits{MaxFeatures: 9}, "max_features"},
		{write("wide.model", binaryWithNumFeature(t, "binary/binary_logistic.model", 1<<20+1)), ModelLimits{}, "max_features"},
	} {
		_, err := LoadModel(t.Context(), tc.path, nil, WithLimits(tc.lim))
		if !errors.Is(err, ErrModelLimit) || !strings.Contains(err.Error(), tc.limit) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s under %+v: %v", filepath.Base(tc.path), tc.lim, err)
		}
	}
	// Within the defaults all three load, the archives without holding
	// their padding member.
	for _, p := range []string{plain, bomb, crowded} {
		if _, err := LoadModel(t.Context(), p, nil); err != nil {
			t.Errorf("%s with default limits: %v", filepath.Base(p), err)
		}
	}
}

// binaryWithNumFeature is a legacy binary fixture whose learner header
// claims n features. The format has no feature names, so each would get
// one made: the limit must refuse it before that.
func binaryWithNumFeature(t *testing.T, name string, n uint32) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:4]) != "binf" {
		t.Fatalf("%s has no binf header", name)
	}
	// LearnerModelParamLegacy: base_score (float32), then num_feature (uint32).
	binary.LittleEndian.PutUint32(b[4+4:], n)
	return b
}
