package azure

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

var (
	// ErrNotFound means the blob or container does not exist (404).
	ErrNotFound = errors.New("azure: not found")
	// ErrExists means a create-only write found the blob already there (409
	// BlobAlreadyExists, answered to If-None-Match: *).
	ErrExists = errors.New("azure: already exists")
	// ErrConditionNotMet means an If-Match / If-None-Match precondition
	// failed (412 ConditionNotMet).
	ErrConditionNotMet = errors.New("azure: condition not met")
	// ErrLeaseConflict means a lease decided against the request: another
	// client holds the lease, the request carried no lease ID or another
	// one, or the lease is broken or gone.
	ErrLeaseConflict = errors.New("azure: lease conflict")
	// ErrLeaseLost means a holder could not renew its lease before it
	// expired; it must stop writing as the holder.
	ErrLeaseLost = errors.New("azure: lease lost")
)

// leaseCodes are the service's answers that mean a lease stood in the way.
var leaseCodes = []bloberror.Code{
	bloberror.LeaseAlreadyPresent,
	bloberror.LeaseAlreadyBroken,
	bloberror.LeaseIDMismatchWithBlobOperation,
	bloberror.LeaseIDMismatchWithContainerOperation,
	bloberror.LeaseIDMismatchWithLeaseOperation,
	bloberror.LeaseIDMissing,
	bloberror.LeaseIsBreakingAndCannotBeAcquired,
	bloberror.LeaseIsBreakingAndCannotBeChanged,
	bloberror.LeaseIsBrokenAndCannotBeRenewed,
	bloberror.LeaseLost,
	bloberror.LeaseNotPresentWithBlobOperation,
	bloberror.LeaseNotPresentWithContainerOperation,
	bloberror.LeaseNotPresentWithLeaseOperation,
}

// sentinel maps a service error to this package's sentinel, or nil. A HEAD
// answer has no body; the SDK then takes the code from x-ms-error-code, and
// the status decides when even that is missing.
func sentinel(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return nil
	}
	switch {
	case bloberror.HasCode(err, leaseCodes...):
		return ErrLeaseConflict
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ContainerAlreadyExists):
		return ErrExists
	case bloberror.HasCode(err, bloberror.ConditionNotMet):
		return ErrConditionNotMet
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
		return ErrNotFound
	}
	switch re.StatusCode {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusPreconditionFailed:
		return ErrConditionNotMet
	}
	return nil
}

// Classify names the operation and blob in err and adds the sentinel that
// matches the service's answer (ErrNotFound, ErrExists, ErrConditionNotMet,
// ErrLeaseConflict), keeping the SDK's *azcore.ResponseError reachable with
// errors.As. It returns nil for nil, and is for callers that also use the
// SDK's clients directly.
func Classify(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if s := sentinel(err); s != nil {
		return fmt.Errorf("azure: %s %s: %w: %w", op, name, s, err)
	}
	return fmt.Errorf("azure: %s %s: %w", op, name, err)
}

// Unreachable reports whether err means the service could not be reached
// or failed (no answer, a broken connection, a timeout, a 5xx answer)
// rather than answered about the blob: the store is down, not the blob
// missing.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500 || re.StatusCode == http.StatusRequestTimeout
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}
