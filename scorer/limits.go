package scorer

import (
	"errors"
	"fmt"
	"io"
)

// ErrModelLimit is wrapped by every error that refuses a model for being
// over one of its ModelLimits; the message names the limit and the file.
var ErrModelLimit = errors.New("over a model limit")

// ModelLimits bound what loading one model may cost, so that a damaged or
// hostile model file (or a model.tar.gz bomb) fails with a clear error
// instead of taking the process's memory. A zero field takes its default
// (DefaultModelLimits); the defaults admit models far beyond what XGBoost
// users train (the 500-tree depth-8 benchmark model has 255,500 nodes and
// 18.6 MB of JSON).
type ModelLimits struct {
	// MaxFileBytes bounds the model file as read (model.tar.gz still
	// compressed) and the model member inside a model.tar.gz. Default
	// 256 MiB.
	MaxFileBytes int64
	// MaxTrees bounds the trees in the file. Default 100,000.
	MaxTrees int
	// MaxNodes bounds the nodes of all trees in the file. Default
	// 10,000,000 (about 1 GiB of XGBoost JSON).
	MaxNodes int
	// MaxDepth bounds the depth of a tree; every row walks every level of
	// the deepest trees. Default and maximum 64.
	MaxDepth int
	// MaxHeapBytes bounds the scorer's compiled form of the trees (what
	// stays in memory while the model serves). Default 1 GiB.
	MaxHeapBytes int64
	// MaxTarMembers bounds the entries of a model.tar.gz. Default 64.
	MaxTarMembers int
	// MaxTarBytes bounds the uncompressed bytes of a model.tar.gz, every
	// member and header included. Default 1 GiB.
	MaxTarBytes int64
	// MaxTarMemberBytes bounds one member of a model.tar.gz. Default
	// MaxFileBytes.
	MaxTarMemberBytes int64
	// MaxFeatures bounds a model's inputs. A file that lists no feature
	// names (XGBoost's binary format always, its JSON sometimes) gets one
	// made per feature, so a few damaged bytes in num_feature would
	// otherwise cost tens of megabytes. Default and maximum 1,048,576.
	MaxFeatures int
}

// DefaultModelLimits returns the limits a zero ModelLimits field takes.
func DefaultModelLimits() ModelLimits {
	return ModelLimits{
		MaxFileBytes:  256 << 20,
		MaxTrees:      100_000,
		MaxNodes:      10_000_000,
		MaxDepth:      maxTreeDepth,
		MaxHeapBytes:  1 << 30,
		MaxTarMembers: 64,
		MaxTarBytes:   1 << 30,
		MaxFeatures:   maxFeatures,
	}
}

// withDefaults fills zero fields.
func (l ModelLimits) withDefaults() ModelLimits {
	d := DefaultModelLimits()
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxTrees <= 0 {
		l.MaxTrees = d.MaxTrees
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = d.MaxNodes
	}
	if l.MaxDepth <= 0 || l.MaxDepth > maxTreeDepth {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxHeapBytes <= 0 {
		l.MaxHeapBytes = d.MaxHeapBytes
	}
	if l.MaxTarMembers <= 0 {
		l.MaxTarMembers = d.MaxTarMembers
	}
	if l.MaxFeatures <= 0 || l.MaxFeatures > maxFeatures {
		l.MaxFeatures = d.MaxFeatures
	}
	if l.MaxTarBytes <= 0 {
		l.MaxTarBytes = d.MaxTarBytes
	}
	if l.MaxTarMemberBytes <= 0 {
		l.MaxTarMemberBytes = l.MaxFileBytes
	}
	return l
}

// WithLimits sets the limits a model is loaded under (zero fields keep
// their defaults).
func WithLimits(l ModelLimits) LoadOption {
	return func(o *loadOptions) { o.limits = l }
}

// limitError says which limit a model is over. The caller (ParseModel,
// LoadModel) prefixes the file.
func limitError(what string, got int64, name string, limit int64) error {
	return fmt.Errorf("%w: %s is %d, over the %s limit of %d", ErrModelLimit, what, got, name, limit)
}

// capReader fails once more than n bytes have been read through it, so a
// compressed archive cannot expand without bound.
type capReader struct {
	r    io.Reader
	n    int64 // bytes still allowed
	read int64
}

var errCapExceeded = errors.New("read limit exceeded")

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		// One byte more than allowed tells a full read from an overrun.
		var b [1]byte
		n, err := c.r.Read(b[:])
		if n > 0 {
			return 0, errCapExceeded
		}
		return 0, err
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	c.read += int64(n)
	return n, err
}
