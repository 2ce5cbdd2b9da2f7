package catalog

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layerMTime is the modification time of every generated tar entry.
var layerMTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// gzipLevel is pinned: Go's compress/gzip output is deterministic for a given
// level and Go version.
const gzipLevel = gzip.BestSpeed

// fileSpec is one regular file in a generated layer.
type fileSpec struct {
	path   string // relative, slash separated, no leading slash
	size   int64  // bytes of generated content (ignored when text is set)
	text   string // literal content
	mode   int64  // 0 means 0644
	random bool   // fully incompressible content (else 1 block in 4 after the first is zeros)
}

// layerSpec describes a generated layer; id must be unique in a catalog and
// (with the seed) determines the content.
type layerSpec struct {
	id    string
	files []fileSpec
}

// layerResult is what generation learns about a layer.
type layerResult struct {
	Digest v1.Hash `json:"digest"` // sha256 of the gzip stream
	DiffID v1.Hash `json:"diffID"` // sha256 of the uncompressed tar
	Size   int64   `json:"size"`   // compressed size
}

func (f fileSpec) contentSize() int64 {
	if f.text != "" {
		return int64(len(f.text))
	}
	return f.size
}

// tarEntry is a directory (file == nil) or a file in tar order.
type tarEntry struct {
	name string
	file *fileSpec
}

// entries lists the layer's directories and files in a fixed order: sorted by
// path, every directory before its contents.
func (l layerSpec) entries() []tarEntry {
	dirs := map[string]bool{}
	var out []tarEntry
	for i := range l.files {
		f := &l.files[i]
		for d := path.Dir(f.path); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			out = append(out, tarEntry{name: d + "/"})
		}
		out = append(out, tarEntry{name: f.path, file: f})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// contentSeed derives the PRNG seed of one file from the catalog seed.
func contentSeed(seed uint64, layerID, file string) [32]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h := sha256.New()
	h.Write(b[:])
	io.WriteString(h, "\x00"+layerID+"\x00"+file)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// content streams pseudo-random file content. The bytes depend only on the
// seed and the offset, never on how callers chunk their reads: blocks are
// aligned at 4 KiB, and (unless random) every block after the first is zeros
// with probability 1/4 so binaries compress a little, as real ones do.
type content struct {
	data   *rand.ChaCha8 // content bytes
	pick   *rand.PCG     // one zero-block decision per block
	pos    int64
	size   int64
	random bool
	zero   bool
}

func newContent(seed [32]byte, size int64, random bool) *content {
	return &content{
		data: rand.NewChaCha8(seed),
		pick: rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:16])),
		size: size, random: random,
	}
}

const contentBlock = 4096

func (c *content) Read(p []byte) (int, error) {
	if c.pos >= c.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && c.pos < c.size {
		if c.pos%contentBlock == 0 {
			c.zero = !c.random && c.pos > 0 && c.pick.Uint64()%4 == 0
		}
		k := int(min(int64(len(p)-n), c.size-c.pos, contentBlock-c.pos%contentBlock))
		blk := p[n : n+k]
		if c.zero {
			clear(blk)
		} else {
			c.data.Read(blk)
		}
		n += k
		c.pos += int64(k)
	}
	return n, nil
}

// writeLayer generates the layer as a gzip'd tar into dir/sha256/<hex>,
// streaming (never holding the layer in memory), and returns its digests.
func writeLayer(ctx context.Context, dir string, seed uint64, l layerSpec) (layerResult, error) {
	tmp, err := os.CreateTemp(dir, ".layer-*")
	if err != nil {
		return layerResult{}, fmt.Errorf("layer %s: %w", l.id, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return layerResult{}, fmt.Errorf("layer %s: %w", l.id, err)
	}
	res, err := streamLayer(ctx, tmp, seed, l)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return layerResult{}, fmt.Errorf("layer %s: %w", l.id, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, res.Digest.Hex)); err != nil {
		return layerResult{}, fmt.Errorf("layer %s: %w", l.id, err)
	}
	return res, nil
}

type countingHash struct {
	hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.Hash.Write(p)
}

func streamLayer(ctx context.Context, w io.Writer, seed uint64, l layerSpec) (layerResult, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	compressed := &countingHash{Hash: sha256.New()}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(bw, compressed), gzipLevel)
	if err != nil {
		return layerResult{}, err
	}
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	for _, e := range l.entries() {
		if err := ctx.Err(); err != nil {
			return layerResult{}, err
		}
		hdr := &tar.Header{
			Name: e.name, Mode: 0o755, ModTime: layerMTime, Typeflag: tar.TypeDir,
			Uname: "root", Gname: "root", Format: tar.FormatUSTAR,
		}
		if e.file == nil {
			if err := tw.WriteHeader(hdr); err != nil {
				return layerResult{}, err
			}
			continue
		}
		f := e.file
		hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, f.contentSize(), 0o644
		if f.mode != 0 {
			hdr.Mode = f.mode
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return layerResult{}, err
		}
		var src io.Reader = strings.NewReader(f.text)
		if f.text == "" {
			src = newContent(contentSeed(seed, l.id, f.path), f.size, f.random)
		}
		if _, err := io.Copy(tw, src); err != nil {
			return layerResult{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return layerResult{}, err
	}
	if err := zw.Close(); err != nil {
		return layerResult{}, err
	}
	if err := bw.Flush(); err != nil {
		return layerResult{}, err
	}
	return layerResult{
		Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", compressed.Sum(nil))},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diff.Sum(nil))},
		Size:   compressed.n,
	}, nil
}
