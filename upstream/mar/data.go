package mar

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/upstream/mar/fault"
)

// The data listener emulates MAR's CDN: blob GETs on the registry are
// redirected to
//
//	http://<data>/docker/registry/v2/blobs/sha256/<hex[:2]>/<hex>/data?rn=<repo>&se=<unix expiry>&sp=r&sv=2021-08-06&sig=<hmac>
//
// The signature covers the path, repository and expiry, like an Azure SAS
// URL; no Authorization header is needed (clients drop it on cross-host
// redirects).
const dataPrefix = "/docker/registry/v2/blobs/"

// dataURL returns a signed URL for the blob on the data listener.
func (s *Server) dataURL(r *http.Request, repo string, d v1.Hash) string {
	host := s.DataAddr()
	if h, port, err := net.SplitHostPort(host); err == nil && net.ParseIP(h).IsUnspecified() {
		reqHost := r.Host
		if rh, _, err := net.SplitHostPort(r.Host); err == nil {
			reqHost = rh
		}
		host = net.JoinHostPort(reqHost, port)
	}
	p := fmt.Sprintf("%s%s/%s/%s/data", dataPrefix, d.Algorithm, d.Hex[:2], d.Hex)
	se := strconv.FormatInt(time.Now().Add(s.cfg.URLTTL).Unix(), 10)
	q := url.Values{"rn": {repo}, "se": {se}, "sp": {"r"}, "sv": {"2021-08-06"}, "sig": {s.sign("data", p, repo, se)}}
	return "http://" + host + p + "?" + q.Encode()
}

// parseData classifies a data-listener request.
func parseData(r *http.Request) route {
	rt := route{kind: fault.KindBlobData, repo: r.URL.Query().Get("rn")}
	rest, ok := strings.CutPrefix(r.URL.Path, dataPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[3] != "data" {
		return route{kind: fault.KindOther}
	}
	h, err := v1.NewHash(parts[0] + ":" + parts[2])
	if err != nil || len(h.Hex) < 2 || parts[1] != h.Hex[:2] {
		return route{kind: fault.KindOther}
	}
	rt.digest = h.String()
	return rt
}

// serveData is the data listener's handler.
func (s *Server) serveData(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, parseData(r), s.blobData)
}

// blobData serves blob bytes with Range support from the blob's file.
func (s *Server) blobData(w http.ResponseWriter, r *http.Request, rt route) error {
	if rt.kind != fault.KindBlobData {
		azureError(w, http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.")
		return nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		azureError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
		return nil
	}
	q := r.URL.Query()
	se := q.Get("se")
	exp, err := strconv.ParseInt(se, 10, 64)
	if err != nil || !s.validSig(q.Get("sig"), "data", r.URL.Path, rt.repo, se) || time.Now().Unix() >= exp {
		azureError(w, http.StatusForbidden, "AuthenticationFailed", "Server failed to authenticate the request. Signature invalid or expired.")
		return nil
	}
	d, _ := v1.NewHash(rt.digest)
	b, err := s.cat.Blob(rt.repo, d)
	if err != nil {
		azureError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return nil
	}
	f, err := b.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", b.Digest.String())
	h.Set("Etag", `"`+b.Digest.String()+`"`)
	h.Set("X-Ms-Blob-Type", "BlockBlob")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// azureError writes a storage-style XML error, as the CDN does.
func azureError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Ms-Error-Code", code)
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}
