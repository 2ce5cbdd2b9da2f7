package ociclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
)

// manifestAccept lists every manifest media type airlock serves, so the
// upstream returns indexes and lists as they are, never converted.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

func (c *Client) do(ctx context.Context, r upstream.Repo, method, path string, hdr http.Header) (*http.Response, error) {
	hc, ep, err := c.httpClient(ctx, r)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, ep.URL+"/v2/"+r.Name+path, nil)
	if err != nil {
		return nil, c.wrapErr(r, 0, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.classify(r, err)
	}
	return resp, nil
}

// Manifest implements upstream.Client.
func (c *Client) Manifest(ctx context.Context, r upstream.Repo, ref string, head bool) (upstream.Manifest, error) {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	resp, err := c.do(ctx, r, method, "/manifests/"+ref, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return upstream.Manifest{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return upstream.Manifest{}, c.statusErr(r, resp)
	}
	want := parsedOrEmpty(ref)
	hdrDigest := parsedOrEmpty(resp.Header.Get("Docker-Content-Digest"))
	mt := mediaType(resp.Header.Get("Content-Type"))
	if head {
		d := want
		if d == "" {
			d = hdrDigest
		}
		if d != "" && resp.ContentLength >= 0 && mt != "" {
			return upstream.Manifest{Digest: d, MediaType: mt, Size: resp.ContentLength}, nil
		}
		// Without digest or size a HEAD cannot answer; fall back to GET.
		return c.Manifest(ctx, r, ref, false)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxManifest+1))
	if err != nil {
		return upstream.Manifest{}, c.wrapErr(r, 0, fmt.Errorf("read manifest %s: %w", ref, err))
	}
	if int64(len(body)) > c.maxManifest {
		return upstream.Manifest{}, c.wrapErr(r, resp.StatusCode, fmt.Errorf("manifest %s is larger than %d bytes", ref, c.maxManifest))
	}
	d := want
	if d == "" {
		d = hdrDigest
	}
	if d == "" {
		d = digest.FromBytes(body)
	}
	if got := d.Algorithm().FromBytes(body); got != d {
		return upstream.Manifest{}, c.wrapErr(r, resp.StatusCode, fmt.Errorf("manifest %s: digest mismatch: want %s, got %s", ref, d, got))
	}
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.MediaType != "" {
			mt = probe.MediaType
		}
	}
	return upstream.Manifest{Digest: d, MediaType: mt, Size: int64(len(body)), Body: body}, nil
}

// parsedOrEmpty returns s as a digest if it is a valid one, else "".
func parsedOrEmpty(s string) digest.Digest {
	d, err := digest.Parse(s)
	if err != nil {
		return ""
	}
	return d
}

func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// Blob implements upstream.Client.
func (c *Client) Blob(ctx context.Context, r upstream.Repo, d digest.Digest, offset, size int64) (upstream.BlobBody, error) {
	hdr := http.Header{}
	switch {
	case offset > 0 && size > offset:
		hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, size-1))
	case offset > 0:
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.do(ctx, r, http.MethodGet, "/blobs/"+d.String(), hdr)
	if err != nil {
		return upstream.BlobBody{}, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return upstream.BlobBody{Body: resp.Body, Offset: 0, Size: resp.ContentLength}, nil
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || (offset > 0 && start != offset) {
			resp.Body.Close()
			return upstream.BlobBody{}, c.wrapErr(r, resp.StatusCode, fmt.Errorf("blob %s: bad Content-Range %q for offset %d", d, resp.Header.Get("Content-Range"), offset))
		}
		return upstream.BlobBody{Body: resp.Body, Offset: start, Size: size}, nil
	}
	defer resp.Body.Close()
	return upstream.BlobBody{}, c.statusErr(r, resp)
}

// parseContentRange parses "bytes a-b/size" (size may be "*": -1).
func parseContentRange(v string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, total, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	size = -1
	if total != "*" {
		if size, err = strconv.ParseInt(total, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, size, true
}

// StatBlob implements upstream.Client.
func (c *Client) StatBlob(ctx context.Context, r upstream.Repo, d digest.Digest) (int64, error) {
	resp, err := c.do(ctx, r, http.MethodHead, "/blobs/"+d.String(), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, c.statusErr(r, resp)
	}
	return resp.ContentLength, nil
}

// Referrers implements upstream.Client.
func (c *Client) Referrers(ctx context.Context, r upstream.Repo, d digest.Digest, artifactType string) (upstream.Referrers, error) {
	path := "/referrers/" + d.String()
	if artifactType != "" {
		path += "?artifactType=" + url.QueryEscape(artifactType)
	}
	resp, err := c.do(ctx, r, http.MethodGet, path, http.Header{"Accept": {"application/vnd.oci.image.index.v1+json"}})
	if err != nil {
		return upstream.Referrers{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return upstream.Referrers{}, c.statusErr(r, resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxManifest+1))
	if err != nil || int64(len(body)) > c.maxManifest {
		return upstream.Referrers{}, c.wrapErr(r, resp.StatusCode, fmt.Errorf("referrers %s: unreadable or too large body: %v", d, err))
	}
	filtered := artifactType != "" && strings.Contains(resp.Header.Get("OCI-Filters-Applied"), "artifactType")
	return upstream.Referrers{Body: body, MediaType: mediaType(resp.Header.Get("Content-Type")), Filtered: filtered}, nil
}
