package mar

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"go.uber.org/zap"

	"github.com/airlock/airlock/internal/httprec"
	"github.com/airlock/airlock/internal/ocierr"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
)

// handler serves one parsed request; a returned error becomes OCI error JSON.
type handler func(w http.ResponseWriter, r *http.Request, rt route) error

// serve runs h for a counted request: it applies matching faults, records
// stats (also when a cut fault aborts the handler) and logs.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route, h handler) {
	if !s.enter() {
		panic(http.ErrAbortHandler) // shutting down
	}
	defer s.inflight.Done()
	rec := httprec.New(w)
	dropped := false
	defer func() {
		p := recover()
		status := rec.Status()
		if status == 0 && !dropped {
			status = http.StatusOK
		}
		key := RequestStat{Method: r.Method, Kind: rt.kind, Repo: rt.repo, Digest: rt.digest, Status: status}
		if rt.kind == KindManifest && rt.ref != rt.digest {
			key.Ref = rt.ref
		}
		s.stats.request(key, rec.Bytes(), p != nil)
		s.log.Debug("request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("kind", string(rt.kind)), zap.Int("status", status), zap.Int64("bytes", rec.Bytes()), zap.Bool("aborted", p != nil))
		if p != nil {
			panic(p)
		}
	}()
	eff := s.faults.Evaluate(fault.Request{Method: r.Method, Kind: rt.kind, Repo: rt.repo, Digest: rt.digest})
	if !eff.None() {
		s.log.Debug("faults apply", zap.String("path", r.URL.Path), zap.Ints("ids", eff.IDs))
	}
	if eff.Unreachable {
		dropped = true
		fault.Drop(rec)
		return
	}
	if err := fault.Sleep(r.Context(), eff.Delay); err != nil {
		panic(http.ErrAbortHandler) // client gone or server closing: no empty 200
	}
	if eff.Status != 0 {
		if eff.RetryAfter > 0 {
			rec.Header().Set("Retry-After", strconv.Itoa(eff.RetryAfter))
		}
		_ = ocierr.Write(rec, r, eff.Status, faultError(eff.Status, rt.kind))
		return
	}
	bw := eff.BodyWriter(rec, r.Context().Done())
	if err := h(bw, r, rt); err != nil {
		s.handleError(bw, r, err)
	}
}

// faultError is the OCI error an injected status carries.
func faultError(status int, kind Kind) errcode.Error {
	msg := "injected fault"
	switch {
	case status == http.StatusTooManyRequests:
		return errcode.ErrorCodeTooManyRequests.WithMessage("too many requests (injected fault)")
	case status == http.StatusServiceUnavailable:
		return errcode.ErrorCodeUnavailable.WithMessage("service unavailable (injected fault)")
	case status == http.StatusUnauthorized:
		return errcode.ErrorCodeUnauthorized.WithMessage(msg)
	case status == http.StatusForbidden:
		return errcode.ErrorCodeDenied.WithMessage(msg)
	case status == http.StatusNotFound && kind == KindManifest:
		return errcode.ErrorCodeManifestUnknown.WithMessage(msg)
	case status == http.StatusNotFound && (kind == KindBlob || kind == KindBlobData):
		return errcode.ErrorCodeBlobUnknown.WithMessage(msg)
	case status == http.StatusNotFound:
		return errcode.ErrorCodeNameUnknown.WithMessage(msg)
	}
	return errcode.ErrorCodeUnknown.WithMessage(msg)
}

// handleError maps handler errors to OCI errors.
func (s *Server) handleError(w http.ResponseWriter, r *http.Request, err error) {
	var ec errcode.Error
	switch {
	case errors.As(err, &ec):
	case errors.Is(err, catalog.ErrNameUnknown):
		ec = errcode.ErrorCodeNameUnknown.WithMessage("repository name not known to registry")
	case errors.Is(err, catalog.ErrManifestUnknown):
		ec = errcode.ErrorCodeManifestUnknown.WithMessage("manifest unknown")
	case errors.Is(err, catalog.ErrBlobUnknown):
		ec = errcode.ErrorCodeBlobUnknown.WithMessage("blob unknown to registry")
	default:
		s.log.Error("request failed", zap.String("path", r.URL.Path), zap.Error(err))
		ec = errcode.ErrorCodeUnknown.WithMessage(err.Error())
	}
	_ = ocierr.Write(w, r, 0, ec)
}

// unsupported answers a write or unknown method on the read-only registry.
func unsupported(w http.ResponseWriter) error {
	w.Header().Set("Allow", "GET, HEAD")
	return errcode.ErrorCodeUnsupported.WithMessage("The operation is unsupported: this registry is read-only")
}
