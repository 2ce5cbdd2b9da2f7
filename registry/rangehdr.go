package registry

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Range requests on blobs. airlock serves one range per request: a
// Range header that is malformed, names several ranges, or starts past
// the end is answered 416 RANGE_INVALID with "Content-Range: bytes */size"
// (no multipart/byteranges: no OCI client asks for it, and refusing it
// keeps one request from reading a blob many times over). An end past the
// blob's last byte is clamped, as RFC 9110 says.

var (
	errRangeSyntax = errors.New("malformed Range header")
	errRangeMulti  = errors.New("multiple ranges are not served")
	errRangeUnsat  = errors.New("range not satisfiable")
)

// parseRange parses a Range header against a blob of size bytes and
// returns the first and last byte offsets (inclusive).
func parseRange(s string, size int64) (first, last int64, err error) {
	spec, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return 0, 0, errRangeSyntax
	}
	if strings.Contains(spec, ",") {
		return 0, 0, errRangeMulti
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, errRangeSyntax
	}
	a, b = strings.Trim(a, ows), strings.Trim(b, ows)
	if a == "" { // suffix: the last b bytes
		n, ok := parseDecimal(b)
		if !ok {
			return 0, 0, errRangeSyntax
		}
		if n == 0 || size == 0 {
			return 0, 0, errRangeUnsat
		}
		return max(size-n, 0), size - 1, nil
	}
	first, ok = parseDecimal(a)
	if !ok {
		return 0, 0, errRangeSyntax
	}
	last = size - 1
	if b != "" {
		if last, ok = parseDecimal(b); !ok || last < first {
			return 0, 0, errRangeSyntax
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, errRangeUnsat
	}
	return first, last, nil
}

// ows is RFC 9110's optional whitespace.
const ows = " \t"

// parseDecimal accepts only ASCII digits (no sign, no spaces) that fit an
// int64.
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// checkRange refuses, before any byte is sent, a Range header that
// parseRange does not accept; http.ServeContent serves the ones it does.
func checkRange(w http.ResponseWriter, r *http.Request, size int64) error {
	rh := r.Header.Get("Range")
	if rh == "" || size < 0 {
		return nil
	}
	if _, _, err := parseRange(rh, size); err != nil {
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		return &apiError{code: errcode.ErrorCodeRangeInvalid, msg: err.Error(), detail: rh, status: http.StatusRequestedRangeNotSatisfiable}
	}
	return nil
}
