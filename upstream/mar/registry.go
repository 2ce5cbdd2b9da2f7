package mar

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock/airlock/upstream/mar/fault"
)

// serveRegistry is the registry listener's handler.
func (s *Server) serveRegistry(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r)
	if rt.admin {
		s.admin(w, r)
		return
	}
	if rt.kind == KindManifest && rt.digest == "" && !rt.badRef {
		if m, err := s.cat.Resolve(rt.repo, rt.ref); err == nil {
			rt.digest = m.Digest.String() // stats and fault matching by digest
		}
	}
	s.serve(w, r, rt, s.registryHandler)
}

func (s *Server) registryHandler(w http.ResponseWriter, r *http.Request, rt route) error {
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	if rt.kind == fault.KindToken {
		return s.token(w, r, rt)
	}
	if !strings.HasPrefix(r.URL.Path, "/v2") {
		http.NotFound(w, r)
		return nil
	}
	if !s.authorized(r) {
		s.challenge(w, r, rt)
		return nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return unsupported(w)
	}
	if rt.badRef {
		if rt.kind == KindBlob || rt.kind == KindReferrers {
			return errcode.ErrorCodeDigestInvalid.WithMessage("invalid digest or repository name")
		}
		return errcode.ErrorCodeNameInvalid.WithMessage("invalid repository name or reference")
	}
	switch rt.kind {
	case KindPing:
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte("{}"))
		return err
	case KindCatalog:
		return s.catalogList(w, r)
	case KindTags:
		return s.tagsList(w, r, rt)
	case KindManifest:
		return s.manifest(w, r, rt)
	case KindBlob:
		return s.blob(w, r, rt)
	case KindReferrers:
		return s.referrers(w, r, rt)
	}
	return errcode.ErrorCodeUnsupported.WithMessage("unsupported endpoint")
}

func (s *Server) manifest(w http.ResponseWriter, r *http.Request, rt route) error {
	m, err := s.cat.Resolve(rt.repo, rt.ref)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", string(m.MediaType))
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("Etag", `"`+m.Digest.String()+`"`)
	h.Set("Content-Length", strconv.Itoa(len(m.Raw)))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	_, err = w.Write(m.Raw)
	return err
}

// blob answers HEAD directly and redirects GET to the data listener.
func (s *Server) blob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, _ := v1.NewHash(rt.digest)
	b, err := s.cat.Blob(rt.repo, d)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", b.Digest.String())
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(b.Size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	h.Set("Location", s.dataURL(r, rt.repo, b.Digest))
	w.WriteHeader(http.StatusTemporaryRedirect)
	return nil
}

func (s *Server) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, _ := v1.NewHash(rt.digest)
	refs := []v1.Descriptor{}
	if _, err := s.cat.Tags(rt.repo); err == nil {
		refs = append(refs, s.cat.Referrers(rt.repo, d)...)
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := []v1.Descriptor{}
		for _, x := range refs {
			if x.ArtifactType == at {
				kept = append(kept, x)
			}
		}
		refs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSONAs(w, r, string(types.OCIImageIndex), v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: refs})
}

func (s *Server) tagsList(w http.ResponseWriter, r *http.Request, rt route) error {
	tags, err := s.cat.Tags(rt.repo)
	if err != nil {
		return err
	}
	page, next := paginate(tags, r.URL.Query())
	if next != "" {
		w.Header().Set("Link", linkNext("/v2/"+rt.repo+"/tags/list", next, r.URL.Query().Get("n")))
	}
	return writeJSON(w, r, map[string]any{"name": rt.repo, "tags": page})
}

func (s *Server) catalogList(w http.ResponseWriter, r *http.Request) error {
	page, next := paginate(s.cat.Repos(), r.URL.Query())
	if next != "" {
		w.Header().Set("Link", linkNext("/v2/_catalog", next, r.URL.Query().Get("n")))
	}
	return writeJSON(w, r, map[string]any{"repositories": page})
}

// paginate applies the distribution spec's n and last parameters to a sorted
// list; next is the last returned entry when more remain. An n that is not a
// non-negative integer is ignored.
func paginate(all []string, q url.Values) (page []string, next string) {
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	page = all
	if n, err := strconv.Atoi(q.Get("n")); err == nil && n >= 0 && n < len(all) {
		page = all[:n]
		if n > 0 {
			next = page[n-1]
		}
	}
	return append([]string{}, page...), next
}

func linkNext(path, last, n string) string {
	q := url.Values{"last": {last}, "n": {n}}
	return "<" + path + "?" + q.Encode() + `>; rel="next"`
}

func writeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return writeJSONAs(w, r, "application/json", v)
}

// writeJSONAs answers 200 with v in JSON as contentType (no body to HEAD).
func writeJSONAs(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(raw)
	return err
}
