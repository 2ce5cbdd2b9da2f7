package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/airlock/airlock/cache"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
)

const headerOrigin = "X-Azure-Origin"

func (reg *Registry) manifest(w http.ResponseWriter, r *http.Request, req request) error {
	head := r.Method == http.MethodHead
	m, err := reg.src.Manifest(r.Context(), req.repo, req.ref, head)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	h.Set("ETag", `"`+m.Digest.String()+`"`)
	if m.FromUpstream {
		h.Set(headerOrigin, "upstream")
	}
	w.WriteHeader(http.StatusOK)
	if !head {
		w.Write(m.Body)
	}
	return nil
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", newAPIError(errcode.ErrorCodeDigestInvalid, "invalid digest "+strconv.Quote(s), err.Error())
	}
	return d, nil
}

func (reg *Registry) blob(w http.ResponseWriter, r *http.Request, req request) error {
	// The source validates the digest (ErrDigestInvalid): once per request.
	d := digest.Digest(req.ref)
	head := r.Method == http.MethodHead
	b, err := reg.src.Blob(r.Context(), req.repo, d, head)
	if err != nil {
		return err
	}
	// Keys are written in canonical form directly: this runs on every
	// blob request.
	h := w.Header()
	h["Docker-Content-Digest"] = []string{d.String()}
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Etag"] = []string{`"` + d.String() + `"`}
	h["Cache-Control"] = []string{"max-age=31536000"}
	if b.FromUpstream {
		h[headerOrigin] = []string{"upstream"}
	}
	if b.Content == nil {
		h["Accept-Ranges"] = []string{"bytes"} // ServeContent sets it otherwise
		h["Content-Length"] = []string{strconv.FormatInt(b.Size, 10)}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	defer b.Content.Close()
	if err := checkRange(w, r, b.Size); err != nil {
		return err
	}
	if b.Wait == nil {
		http.ServeContent(w, r, "", b.ModTime, b.Content)
		return nil
	}
	serveFilling(w, r, b)
	return nil
}

// serveFilling streams a blob that is still being filled. The response's
// final byte is held back until the fill has verified the digest; if it
// fails, the connection is aborted so the client sees a broken transfer,
// never a complete wrong body.
func serveFilling(w http.ResponseWriter, r *http.Request, b *cache.Blob) {
	g := &gateWriter{ResponseWriter: w, ctx: r.Context(), wait: b.Wait}
	http.ServeContent(g, r, "", b.ModTime, b.Content)
	if g.short() && r.Context().Err() == nil {
		panic(http.ErrAbortHandler)
	}
}

// pageParams reads the n and last query parameters.
func pageParams(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	n = -1
	if s := q.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, "", newAPIError(errcode.ErrorCodePaginationNumberInvalid, "n must be a non-negative integer", s)
		}
	}
	return n, last, nil
}

// nextLink sets the RFC 5988 Link header for the next page.
func nextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{}
	q.Set("n", strconv.Itoa(n))
	q.Set("last", last)
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (reg *Registry) tags(w http.ResponseWriter, r *http.Request, req request) error {
	tags, n, err := page(w, r, "/v2/"+req.repo+"/tags/list", func(last string, limit int) ([]string, bool, error) {
		return reg.src.Tags(r.Context(), req.repo, last, limit)
	})
	if err != nil {
		return err
	}
	if n == 0 { // n=0 still reports an unknown repository
		if _, _, err := reg.src.Tags(r.Context(), req.repo, "", 1); err != nil {
			return err
		}
	}
	writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{req.repo, tags})
	return nil
}

func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request) error {
	repos, _, err := page(w, r, "/v2/_catalog", func(last string, limit int) ([]string, bool, error) {
		return reg.src.Catalog(r.Context(), last, limit)
	})
	if err != nil {
		return err
	}
	writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
	return nil
}

// page lists one page of a paginated answer at path (tags, catalog): n and
// last come from the query (pageParams); unless n is 0, list gives the
// names after last, up to limit (0: all), and whether there are more,
// which sets the Link header to the next page. The names are never nil.
func page(w http.ResponseWriter, r *http.Request, path string, list func(last string, limit int) ([]string, bool, error)) ([]string, int, error) {
	n, last, err := pageParams(r)
	if err != nil {
		return nil, 0, err
	}
	names := []string{}
	if n == 0 {
		return names, n, nil
	}
	got, more, err := list(last, max(n, 0))
	if err != nil {
		return nil, n, err
	}
	if got != nil {
		names = got
	}
	if more && len(names) > 0 {
		nextLink(w, path, n, names[len(names)-1])
	}
	return names, n, nil
}

func (reg *Registry) referrers(w http.ResponseWriter, r *http.Request, req request) error {
	d, err := parseDigest(req.ref)
	if err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	res, err := reg.src.Referrers(r.Context(), req.repo, d, at)
	if err != nil {
		return err
	}
	if res.Filtered {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(http.StatusOK)
	w.Write(res.Body)
	return nil
}
