package registry

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/internal/ocierr"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"go.uber.org/zap"
)

// codeFor maps the cache contract's errors to OCI error codes.
func codeFor(err error) errcode.ErrorCode {
	switch {
	case errors.Is(err, cache.ErrNameInvalid):
		return errcode.ErrorCodeNameInvalid
	case errors.Is(err, cache.ErrTagInvalid):
		return errcode.ErrorCodeTagInvalid
	case errors.Is(err, cache.ErrDigestInvalid):
		return errcode.ErrorCodeDigestInvalid
	case errors.Is(err, cache.ErrNameUnknown):
		return errcode.ErrorCodeNameUnknown
	case errors.Is(err, cache.ErrManifestUnknown):
		return errcode.ErrorCodeManifestUnknown
	case errors.Is(err, cache.ErrManifestInvalid):
		return errcode.ErrorCodeManifestInvalid
	case errors.Is(err, cache.ErrBlobUnknown):
		return errcode.ErrorCodeBlobUnknown
	case errors.Is(err, cache.ErrManifestBlobUnknown):
		return errcode.ErrorCodeManifestBlobUnknown
	case errors.Is(err, cache.ErrUploadUnknown):
		return errcode.ErrorCodeBlobUploadUnknown
	case errors.Is(err, cache.ErrRangeInvalid):
		return errcode.ErrorCodeRangeInvalid
	case errors.Is(err, cache.ErrDenied):
		return errcode.ErrorCodeDenied
	case errors.Is(err, cache.ErrUnsupported):
		return errcode.ErrorCodeUnsupported
	case errors.Is(err, cache.ErrTooManyRequests):
		return errcode.ErrorCodeTooManyRequests
	case errors.Is(err, cache.ErrUnavailable):
		return errcode.ErrorCodeUnavailable
	}
	return errcode.ErrorCodeUnknown
}

// apiError is an error a handler chose the code and message for, and
// optionally a status other than the code's.
type apiError struct {
	code   errcode.ErrorCode
	msg    string
	detail any
	status int
}

func withDetail(e *apiError, detail any) error {
	c := *e
	c.detail = detail
	return &c
}

func (e *apiError) Error() string { return e.code.String() + ": " + e.msg }

func newAPIError(code errcode.ErrorCode, msg string, detail any) error {
	return &apiError{code: code, msg: msg, detail: detail}
}

// writeError maps a handler's error to its OCI error and writes it
// (internal/ocierr writes every OCI error body).
func (reg *Registry) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client is gone; nobody reads the answer
	}
	var e errcode.Error
	var ae *apiError
	var cut errBodyCut
	if errors.As(err, &cut) && !errors.As(err, &ae) {
		reg.log.Info("request body broke off", zap.String("path", r.URL.Path), zap.Error(err))
		ae = &apiError{code: errcode.ErrorCodeBlobUploadInvalid, msg: "the request body broke off", status: http.StatusBadRequest}
	}
	if ae != nil || errors.As(err, &ae) {
		e = ae.code.WithMessage(ae.msg)
		if ae.detail != nil {
			e = e.WithDetail(ae.detail)
		}
	} else {
		code := codeFor(err)
		e = code.WithMessage(code.Message())
		switch {
		case code == errcode.ErrorCodeUnknown && reg.unavailable != nil && reg.unavailable(err):
			reg.log.Warn("storage unreachable", zap.String("path", r.URL.Path), zap.Error(err))
			e = errcode.ErrorCodeUnavailable.WithMessage("the storage cannot be reached; retry shortly")
			w.Header().Set("Retry-After", "1")
		case code == errcode.ErrorCodeUnknown:
			reg.log.Error("internal error", zap.String("path", r.URL.Path), zap.Error(err))
		default:
			e = e.WithDetail(err.Error())
		}
	}
	var ue *cache.UpstreamError
	if errors.As(err, &ue) && ue.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(ue.RetryAfter.Seconds()+0.5)))
	}
	status := 0
	if ae != nil && ae.status != 0 {
		status = ae.status
	}
	if werr := ocierr.Write(w, r, status, e); werr != nil {
		reg.log.Debug("write error response", zap.Error(werr))
	}
}
