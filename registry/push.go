package registry

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
)

// change routes a write to the source's push abilities; a source without
// the one needed does not accept pushes.
func (reg *Registry) change(w http.ResponseWriter, r *http.Request, req request) error {
	switch {
	case req.kind == routeUpload:
		if up, ok := reg.src.(cache.BlobUploader); ok {
			return reg.upload(w, r, req, up)
		}
	case req.kind == routeManifest && r.Method == http.MethodPut:
		if p, ok := reg.src.(cache.ManifestPutter); ok {
			return reg.putManifest(w, r, req, p)
		}
	case req.kind == routeManifest && r.Method == http.MethodDelete:
		if d, ok := reg.src.(cache.Deleter); ok {
			return reg.deleted(w, d.DeleteManifest(r.Context(), req.repo, req.ref))
		}
	case req.kind == routeBlob && r.Method == http.MethodDelete:
		if d, ok := reg.src.(cache.Deleter); ok {
			dg, err := parseDigest(req.ref)
			if err != nil {
				return err
			}
			return reg.deleted(w, d.DeleteBlob(r.Context(), req.repo, dg))
		}
	default:
		return methodNotAllowed(r)
	}
	return newAPIError(errcode.ErrorCodeUnsupported, "this registry does not accept pushes", nil)
}

func (reg *Registry) deleted(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// errTooLarge answers a manifest over the size limit.
var errTooLarge = &apiError{code: errcode.ErrorCodeManifestInvalid, msg: "manifest too large", status: http.StatusRequestEntityTooLarge}

func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, req request, p cache.ManifestPutter) error {
	limit := reg.limits.maxManifest
	if r.ContentLength > limit {
		return withDetail(errTooLarge, "the limit is "+strconv.FormatInt(limit, 10)+" bytes")
	}
	body, err := io.ReadAll(io.LimitReader(reg.body(w, r), limit+1))
	if err != nil {
		return err
	}
	if int64(len(body)) > limit {
		return withDetail(errTooLarge, "the limit is "+strconv.FormatInt(limit, 10)+" bytes")
	}
	tags := r.URL.Query()["tag"]
	res, err := p.PutManifest(r.Context(), req.repo, req.ref, manifestType(r.Header.Get("Content-Type")), body, tags)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+req.repo+"/manifests/"+res.Digest.String())
	h.Set("Docker-Content-Digest", res.Digest.String())
	if res.Subject != "" {
		h.Set("OCI-Subject", res.Subject.String())
	}
	for _, t := range tags {
		h.Add("OCI-Tag", t)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// manifestType is the media type a Content-Type names, without
// parameters; generic types say nothing about the manifest.
func manifestType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	switch mt {
	case "application/json", "application/octet-stream", "text/plain":
		return ""
	}
	return mt
}

// blobCreated answers a completed upload or mount.
func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// body is r's body, cut when the client sends nothing for the body idle
// timeout (slow-loris uploads), so a stalled client frees its slot.
func (reg *Registry) body(w http.ResponseWriter, r *http.Request) io.Reader {
	return &idleReader{r: r.Body, rc: http.NewResponseController(w), idle: reg.limits.bodyIdle}
}

type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleReader) Read(p []byte) (int, error) {
	// Unsupported writers (tests' recorders) simply have no deadline.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, errBodyCut{err}
	}
	return n, err
}

// errBodyCut is a request body that broke off: the client's doing.
type errBodyCut struct{ err error }

func (e errBodyCut) Error() string { return "request body: " + e.err.Error() }
func (e errBodyCut) Unwrap() error { return e.err }
