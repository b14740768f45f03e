package scorer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ModelInfo describes a loaded model.
type ModelInfo struct {
	// Kind is "xgboost", "lightgbm" or "linear".
	Kind string
	// Booster is XGBoost's booster ("gbtree", "dart" or "gblinear"); empty
	// for other kinds.
	Booster string
	// Objective is the XGBoost objective name, LightGBM's objective line,
	// or "linear:<link>".
	Objective string
	// Features are the input names in the order the model indexes them.
	Features []string
	// FeatureTypes are XGBoost's feature types ("q", "float", "int", "c"...),
	// when the model records them.
	FeatureTypes []string
	// Outputs is the number of scores per row (classes for multi:softprob).
	Outputs int
	// Trees is the number of trees used for prediction; TotalTrees counts all
	// trees in the file (they differ when best_iteration limits prediction).
	Trees, TotalTrees int
	// MaxDepth is the depth of the deepest tree.
	MaxDepth int
	// BestIteration is the model's best_iteration attribute, -1 if absent or ignored.
	BestIteration int
	// FormatVersion is the XGBoost version that wrote the file, e.g.
	// "1.7.4", or LightGBM's model format version, e.g. "v4".
	FormatVersion string
	// Encoding is "json", "ubjson", "binary" (XGBoost's legacy format),
	// "lightgbm-text" or "linear-json"; Source is where the model
	// came from (path or URI, with "!member" for a tar.gz member).
	Encoding, Source string
	// Version identifies this exact model content: the S3 ETag when loaded
	// from S3, otherwise "sha256:" and the first 16 hex digits of the file
	// content. It travels with every score.
	Version string
	// SHA256 is the hex SHA-256 of the model file's bytes (a model.tar.gz as
	// stored): the value models.<name>.sha256 pins.
	SHA256 string
}

// Model is a loaded, immutable model. It is safe for concurrent use; each
// goroutine predicting with it needs its own Scratch.
type Model struct {
	info ModelInfo
	impl predictor
}

// predictor is one model family's scoring code (tree ensembles, linear
// models...). Model checks the caller's arguments and dispatches, so a
// family only computes.
type predictor interface {
	// predict writes n rows' scores, or their margins (before the link), to
	// out: outputs() columns, or marginOutputs() when margins is set.
	predict(cols [][]float64, n int, out [][]float64, s *Scratch, margins bool)
	// marginOutputs is how many columns PredictMargins writes.
	marginOutputs() int
	// contributions fills dst (len(Features())+1 values: features, then the
	// bias) with how much each input moved x's margin for output k.
	contributions(dst, x []float64, k int, s *Scratch) error
	// noContributions is nil, or an error wrapping ErrNoContributions that
	// says why the model has none.
	noContributions() error
}

var (
	_ predictor = (*forest)(nil)
	_ predictor = (*linearModel)(nil)
)

// Info describes the model.
func (m *Model) Info() ModelInfo { return m.info }

// Features returns the model's input names in model order.
func (m *Model) Features() []string { return m.info.Features }

// Outputs returns the number of scores per row.
func (m *Model) Outputs() int { return m.info.Outputs }

// Version returns the model's version string.
func (m *Model) Version() string { return m.info.Version }

// LoadOption adjusts how a model is loaded.
type LoadOption func(*loadOptions)

type loadOptions struct {
	allTrees bool
	source   string
	version  string
	limits   ModelLimits
	// sha256 is the hex digest the file's bytes must have ("" = any).
	sha256 string
	// versionID pins the S3 object version read.
	versionID string
	// digest is the file's hex SHA-256, set by parseModel.
	digest string
	// kind, when set, is the only ModelInfo.Kind accepted.
	kind string
}

// WithKind refuses a model of any other kind than kind ("xgboost",
// "lightgbm" or "linear"; "" accepts any), so a configured format is a
// promise the file must keep rather than a hint.
func WithKind(kind string) LoadOption { return func(o *loadOptions) { o.kind = kind } }

// WithAllTrees makes XGBoost models predict with every tree in the file,
// ignoring best_iteration. By default best_iteration (set by early
// stopping) limits prediction, as XGBoost's scikit-learn interface and
// SageMaker's XGBoost container do.
func WithAllTrees() LoadOption { return func(o *loadOptions) { o.allTrees = true } }

// ErrDigestMismatch is wrapped by the error when a model file's SHA-256 is
// not the pinned one (WithSHA256).
var ErrDigestMismatch = errors.New("model digest mismatch")

// WithSHA256 pins the model's content: loading fails, wrapping
// ErrDigestMismatch, unless the file's bytes (a model.tar.gz as stored,
// not its member) have this hex SHA-256 digest. It is checked before the
// file is parsed.
func WithSHA256(hexDigest string) LoadOption {
	return func(o *loadOptions) { o.sha256 = strings.ToLower(strings.TrimSpace(hexDigest)) }
}

// WithVersionID makes an s3:// model load that object version (GetObject
// with VersionId) rather than the newest, so a later write to the key
// changes nothing until the pin does. It needs a versioned bucket.
func WithVersionID(id string) LoadOption {
	return func(o *loadOptions) { o.versionID = id }
}

// withSource records where the bytes came from, for errors and ModelInfo.
func withSource(src, version string) LoadOption {
	return func(o *loadOptions) { o.source, o.version = src, version }
}

// ParseModel loads a model from its bytes, detecting the format: XGBoost
// JSON, UBJSON or legacy binary, a LightGBM text model, a gzip'd tar
// archive holding one (SageMaker's model.tar.gz with xgboost-model), or the
// linear-model JSON format.
func ParseModel(data []byte, opts ...LoadOption) (*Model, error) {
	o := applyLoadOptions(opts)
	m, err := parseModel(data, o)
	if err != nil {
		if o.source != "" {
			return nil, fmt.Errorf("model %s: %w", o.source, err)
		}
		return nil, err
	}
	return m, nil
}

func applyLoadOptions(opts []LoadOption) loadOptions {
	var o loadOptions
	for _, fn := range opts {
		fn(&o)
	}
	o.limits = o.limits.withDefaults()
	return o
}

func parseModel(data []byte, o loadOptions) (*Model, error) {
	if int64(len(data)) > o.limits.MaxFileBytes {
		return nil, limitError("the file size", int64(len(data)), "max_file_bytes", o.limits.MaxFileBytes)
	}
	sum := sha256.Sum256(data)
	o.digest = hex.EncodeToString(sum[:])
	if o.sha256 != "" && o.digest != o.sha256 {
		return nil, fmt.Errorf("%w: the file's sha256 is %s, the pinned one is %s", ErrDigestMismatch, o.digest, o.sha256)
	}
	if o.version == "" {
		o.version = "sha256:" + o.digest[:16]
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		member, inner, err := extractModelFromTarGz(data, o.limits)
		if err != nil {
			return nil, err
		}
		if o.source != "" {
			o.source += "!" + member
		} else {
			o.source = "!" + member
		}
		return parseModel2(inner, o)
	}
	return parseModel2(data, o)
}

func parseModel2(data []byte, o loadOptions) (*Model, error) {
	trim := bytes.TrimLeft(data, " \t\r\n")
	var (
		jsonText []byte
		encoding string
	)
	switch {
	case len(trim) == 0:
		return nil, errors.New("empty model file")
	case trim[0] == '{' && len(trim) > 1 && isJSONObjectStart(trim[1:]):
		jsonText, encoding = trim, "json"
	case data[0] == '{':
		j, err := ubjsonToJSON(data)
		if err != nil {
			// A pre-1.3 binary file (no "binf") whose base_score's first
			// byte happens to be '{' looks like UBJSON until it fails.
			if looksLikeLegacyBinary(data) {
				return parseLegacyBinary(data, o)
			}
			return nil, fmt.Errorf("xgboost ubjson: %w", err)
		}
		jsonText, encoding = j, "ubjson"
	case bytes.HasPrefix(data, []byte("binf")) || looksLikeLegacyBinary(data):
		return parseLegacyBinary(data, o)
	case isLightGBMText(trim):
		p, info, err := parseLightGBM(trim, o)
		if err != nil {
			return nil, fmt.Errorf("lightgbm model: %w", err)
		}
		return newModel(p, info, o, "lightgbm-text")
	default:
		return nil, fmt.Errorf("%w: unrecognised model format (first bytes %q): want XGBoost JSON, UBJSON or binary, a LightGBM text model, a model.tar.gz holding one, or a linear model JSON", ErrUnsupportedModel, head(data, 8))
	}
	if isLinearDoc(jsonText) {
		lm, info, err := parseLinear(jsonText)
		if err != nil {
			return nil, err
		}
		return newModel(lm, info, o, "linear-json")
	}
	p, info, err := parseXGBoostJSON(jsonText, o)
	if err != nil {
		return nil, err
	}
	return newModel(p, info, o, encoding)
}

// parseLegacyBinary reads XGBoost's legacy binary format (what SageMaker's
// XGBoost 1.x container saves as xgboost-model).
func parseLegacyBinary(data []byte, o loadOptions) (*Model, error) {
	var doc xgbDoc
	if err := readXGBoostBinary(data, &doc, o.limits); err != nil {
		return nil, fmt.Errorf("xgboost binary model: %w", err)
	}
	p, info, err := compileXGBoost(&doc, o)
	if err != nil {
		return nil, err
	}
	return newModel(p, info, o, "binary")
}

// newModel stamps where a parsed model came from onto its info.
func newModel(p predictor, info ModelInfo, o loadOptions, encoding string) (*Model, error) {
	if o.kind != "" && info.Kind != o.kind {
		return nil, fmt.Errorf("%w: the file is a %s model (%s), the configured format is %s", ErrUnsupportedModel, info.Kind, encoding, o.kind)
	}
	info.Source, info.Version, info.Encoding, info.SHA256 = o.source, o.version, encoding, o.digest
	return &Model{info: info, impl: p}, nil
}

func head(b []byte, n int) []byte { return b[:min(len(b), n)] }

// isJSONObjectStart reports whether the bytes after a '{' continue a JSON
// object. A UBJSON object continues with a length marker ('i', 'U', 'L'...)
// or a '$'/'#' container header instead.
func isJSONObjectStart(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '"' || b[0] == '}')
}

// looksLikeLegacyBinary recognises XGBoost's pre-1.0 binary format: a
// 136-byte learner parameter block followed by the objective name as a
// little-endian uint64 length and text such as "binary:logistic".
func looksLikeLegacyBinary(b []byte) bool {
	const hdr = 136
	if len(b) < hdr+8 {
		return false
	}
	n := binary.LittleEndian.Uint64(b[hdr:])
	if n == 0 || n > 64 || uint64(len(b)-hdr-8) < n {
		return false
	}
	name := b[hdr+8 : hdr+8+int(n)]
	return bytes.IndexByte(name, ':') > 0
}

// modelFileNames are the names a model file has in a SageMaker artifact,
// first preferred: the XGBoost container's xgboost-model, then what
// XGBoost's and LightGBM's save_model are usually given.
var modelFileNames = []string{"xgboost-model", "model.json", "model.ubj", "model.txt"}

// extractModelFromTarGz returns the model member of a SageMaker training
// artifact: the first of modelFileNames present, else the only regular file. Only
// candidate members are held in memory; the archive's entries, total
// uncompressed bytes and member sizes are bounded by lim.
func extractModelFromTarGz(data []byte, lim ModelLimits) (string, []byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return "", nil, fmt.Errorf("model.tar.gz: %w", err)
	}
	cr := &capReader{r: zr, n: lim.MaxTarBytes}
	tr := tar.NewReader(cr)
	var (
		names    []string
		chosen   string
		content  []byte
		fallback []byte
		entries  int
	)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errCapExceeded) {
			return "", nil, fmt.Errorf("model.tar.gz: %w", limitError("the uncompressed size", cr.read+1, "max_tar_bytes", lim.MaxTarBytes))
		}
		if err != nil {
			return "", nil, fmt.Errorf("model.tar.gz: %w", err)
		}
		if entries++; entries > lim.MaxTarMembers {
			return "", nil, fmt.Errorf("model.tar.gz: %w", limitError("the number of entries", int64(entries), "max_tar_members", int64(lim.MaxTarMembers)))
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > lim.MaxTarMemberBytes {
			return "", nil, fmt.Errorf("model.tar.gz: member %s: %w", h.Name, limitError("its size", h.Size, "max_tar_member_bytes", lim.MaxTarMemberBytes))
		}
		names = append(names, h.Name)
		base := path.Base(h.Name)
		rank := slices.Index(modelFileNames, base)
		take := rank >= 0 && (chosen == "" || rank < slices.Index(modelFileNames, path.Base(chosen)))
		if !take && len(names) > 1 {
			continue // the tar reader skips it (still counted by cr)
		}
		b := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			if errors.Is(err, errCapExceeded) {
				return "", nil, fmt.Errorf("model.tar.gz: %w", limitError("the uncompressed size", cr.read+1, "max_tar_bytes", lim.MaxTarBytes))
			}
			return "", nil, fmt.Errorf("model.tar.gz: member %s: %w", h.Name, err)
		}
		if take {
			chosen, content = h.Name, b
		}
		if len(names) == 1 {
			fallback = b
		}
	}
	if chosen != "" {
		return chosen, content, nil
	}
	if len(names) == 1 {
		return names[0], fallback, nil
	}
	return "", nil, fmt.Errorf("model.tar.gz: none of %s among %d files %v", strings.Join(modelFileNames, ", "), len(names), names)
}

// ObjectGetter is the subset of the S3 client that loading and watching
// models from s3:// URIs needs (*s3.Client satisfies it).
type ObjectGetter = s3Getter

// LoadModel loads a model from a local path or an s3:// URI (getter is
// required for S3 and may be nil otherwise).
func LoadModel(ctx context.Context, uri string, getter ObjectGetter, opts ...LoadOption) (*Model, error) {
	if strings.HasPrefix(uri, "s3://") {
		if getter == nil {
			return nil, fmt.Errorf("model %s: an S3 client is needed for s3:// URIs", uri)
		}
		o := applyLoadOptions(opts)
		data, etag, err := getS3Object(ctx, getter, uri, o.versionID, o.limits.MaxFileBytes)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", uri, err)
		}
		return ParseModel(data, append(opts, withSource(uri, "etag:"+etag))...)
	}
	p, err := resolveModelPath(uri)
	if err != nil {
		return nil, err
	}
	data, err := readModelFile(p, applyLoadOptions(opts).limits.MaxFileBytes)
	if err != nil {
		return nil, err
	}
	return ParseModel(data, append(opts, withSource(p, ""))...)
}

// readModelFile reads a model file, refusing one over maxBytes before
// reading it.
func readModelFile(p string, maxBytes int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if st, err := f.Stat(); err == nil {
		if st.Size() > maxBytes {
			return nil, fmt.Errorf("model %s: %w", p, limitError("the file size", st.Size(), "max_file_bytes", maxBytes))
		}
		buf.Grow(int(st.Size()) + bytes.MinRead) // one allocation, not ReadAll's many
	}
	if _, err := buf.ReadFrom(io.LimitReader(f, maxBytes+1)); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	data := buf.Bytes()
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("model %s: %w", p, limitError("the file size", int64(len(data)), "max_file_bytes", maxBytes))
	}
	return data, nil
}

// resolveModelPath maps a directory (SageMaker unpacks model artifacts into
// /opt/ml/model) to the model file in it: the first of modelFileNames, or
// model.tar.gz, else its only regular file.
func resolveModelPath(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	if !st.IsDir() {
		return p, nil
	}
	for _, name := range append(slices.Clone(modelFileNames), "model.tar.gz") {
		if st, err := os.Stat(filepath.Join(p, name)); err == nil && st.Mode().IsRegular() {
			return filepath.Join(p, name), nil
		}
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, e.Name())
		}
	}
	if len(files) != 1 {
		return "", fmt.Errorf("model: directory %s holds %d files %v and none of %s or model.tar.gz", p, len(files), files, strings.Join(modelFileNames, ", "))
	}
	return filepath.Join(p, files[0]), nil
}
