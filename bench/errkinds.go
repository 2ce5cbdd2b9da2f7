package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Error kinds that are not an HTTP status ("HTTP 503").
const (
	kindCorrupt = "corrupt"
	kindBroken  = "broken body"
	kindTimeout = "timeout"
	kindRefused = "connection refused"
	kindReset   = "connection reset"
	kindTLS     = "TLS"
	kindDNS     = "DNS"
	kindOther   = "other"
)

// errKind classifies an error a node met, for "errors by kind".
func errKind(err error) string {
	var te *transport.Error
	var se *statusError
	var ne net.Error
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &te):
		return fmt.Sprintf("HTTP %d", te.StatusCode)
	case errors.As(err, &se):
		return fmt.Sprintf("HTTP %d", se.code)
	case errors.Is(err, errCorrupt):
		return kindCorrupt
	case errors.Is(err, errBroken), errors.Is(err, io.ErrUnexpectedEOF):
		return kindBroken
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify), errors.As(err, &rec):
		return kindTLS
	case errors.As(err, &dns):
		return kindDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return kindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return kindReset
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	}
	return kindOther
}
