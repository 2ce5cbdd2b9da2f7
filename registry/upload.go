package registry

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/registry/auth"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
)

// upload serves /v2/<name>/blobs/uploads/[<id>]: POST starts a session
// (or uploads monolithically with ?digest=, or mounts with ?mount=), GET
// reports it, PATCH appends a chunk, PUT completes it, DELETE cancels it.
func (reg *Registry) upload(w http.ResponseWriter, r *http.Request, req request, up cache.BlobUploader) error {
	if req.ref == "" {
		if r.Method != http.MethodPost {
			return methodNotAllowed(r)
		}
		return reg.startUpload(w, r, req, up)
	}
	if r.Method == http.MethodPost {
		return methodNotAllowed(r)
	}
	if !validUploadID(req.ref) {
		return newAPIError(errcode.ErrorCodeBlobUploadUnknown, "blob upload unknown to registry", nil)
	}
	u, err := up.Upload(r.Context(), req.repo, req.ref)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		uploadStatus(w, req.repo, u, http.StatusNoContent)
		return nil
	case http.MethodPatch:
		if err := reg.appendChunk(w, r, req, u, true); err != nil {
			return err
		}
		uploadStatus(w, req.repo, u, http.StatusAccepted)
		return nil
	case http.MethodPut:
		d, err := digestParam(r)
		if err != nil {
			return err
		}
		if r.ContentLength != 0 {
			if err := reg.appendChunk(w, r, req, u, false); err != nil {
				return err
			}
		}
		if _, err := u.Commit(r.Context(), d); err != nil {
			return err
		}
		blobCreated(w, req.repo, d)
		return nil
	case http.MethodDelete:
		if err := u.Cancel(r.Context()); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(r)
}

// validUploadID accepts the ids the engine hands out: 32 hex digits.
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func digestParam(r *http.Request) (digest.Digest, error) {
	s := r.URL.Query().Get("digest")
	if s == "" {
		return "", newAPIError(errcode.ErrorCodeDigestInvalid, "the digest query parameter is required", nil)
	}
	d, err := parseDigest(s)
	if err != nil {
		return "", err
	}
	if !d.Algorithm().Available() {
		return "", newAPIError(errcode.ErrorCodeDigestInvalid, "unsupported digest algorithm "+strconv.Quote(string(d.Algorithm())), nil)
	}
	return d, nil
}

func (reg *Registry) startUpload(w http.ResponseWriter, r *http.Request, req request, up cache.BlobUploader) error {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		if ok, err := reg.mount(r, req, up, d, q.Get("from")); err != nil {
			return err
		} else if ok {
			blobCreated(w, req.repo, d)
			return nil
		}
		// Not mountable: a plain upload session, as the spec says.
	}
	var d digest.Digest
	if q.Has("digest") {
		var err error
		if d, err = digestParam(r); err != nil {
			return err
		}
	}
	o := cache.UploadOptions{Client: clientKey(r)}
	if d != "" {
		o.Algorithm = d.Algorithm()
	}
	u, err := up.StartUpload(r.Context(), req.repo, o)
	if err != nil {
		return err
	}
	if d == "" {
		uploadStatus(w, req.repo, u, http.StatusAccepted)
		return nil
	}
	// Monolithic: the body is the whole blob.
	if _, err := u.Append(r.Context(), 0, reg.body(w, r)); err != nil {
		u.Cancel(r.Context())
		return err
	}
	if _, err := u.Commit(r.Context(), d); err != nil {
		return err
	}
	blobCreated(w, req.repo, d)
	return nil
}

// mount links d from another repository if the caller may read it there.
// With auth on, a mount without from (from anywhere) is not offered: it
// would reveal blobs of repositories the caller cannot read.
func (reg *Registry) mount(r *http.Request, req request, up cache.BlobUploader, d digest.Digest, from string) (bool, error) {
	if reg.authz != nil {
		if from == "" {
			return false, nil
		}
		if _, err := reg.authz.Authorize(r, []auth.Access{auth.Repository(from, auth.ActionPull)}); err != nil {
			return false, nil
		}
	}
	_, err := up.Mount(r.Context(), req.repo, from, d)
	if errors.Is(err, cache.ErrBlobUnknown) {
		return false, nil
	}
	return err == nil, err
}

// appendChunk streams the body into u. A Content-Range must start where
// the upload ends; PATCH without one is a streamed upload.
func (reg *Registry) appendChunk(w http.ResponseWriter, r *http.Request, req request, u cache.Upload, patch bool) error {
	offset := u.Size()
	var body io.Reader = reg.body(w, r)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || (r.ContentLength >= 0 && r.ContentLength != end-start+1) {
			uploadHeaders(w, req.repo, u)
			return newAPIError(errcode.ErrorCodeRangeInvalid, "invalid Content-Range "+strconv.Quote(cr), nil)
		}
		offset = start
		body = io.LimitReader(body, end-start+1)
	}
	_, err := u.Append(r.Context(), offset, body)
	if errors.Is(err, cache.ErrRangeInvalid) {
		uploadHeaders(w, req.repo, u)
	}
	return err
}

// parseContentRange reads an upload chunk's "<start>-<end>" (inclusive;
// a "bytes " or "bytes=" prefix is tolerated).
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes="), "bytes ")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, ok1 := parseDecimal(a)
	end, ok2 := parseDecimal(b)
	if !ok1 || !ok2 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// uploadHeaders tell the client where the session is and what it holds.
func uploadHeaders(w http.ResponseWriter, repo string, u cache.Upload) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/uploads/"+u.ID())
	h.Set("Docker-Upload-UUID", u.ID())
	end := u.Size() - 1
	if end < 0 {
		end = 0 // as distribution does: "0-0" for an empty upload
	}
	h.Set("Range", "0-"+strconv.FormatInt(end, 10))
}

func uploadStatus(w http.ResponseWriter, repo string, u cache.Upload, code int) {
	uploadHeaders(w, repo, u)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}
