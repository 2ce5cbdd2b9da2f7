package deploy

import (
	"errors"
	"fmt"

	"github.com/airlock/airlock/rules"
)

// Sentinel errors, matched with errors.Is against an *Error.
var (
	// ErrInvalid is a request the emulated Azure would refuse: a bad value
	// or a limitation of network-isolated clusters.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound is a resource that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is a resource that already exists, or is in use.
	ErrConflict = errors.New("conflict")
)

// Error codes. Each names the limitation or problem.
const (
	CodeInvalidParameter          = "InvalidParameter"
	CodeNotFound                  = "ResourceNotFound"
	CodeAlreadyExists             = "ResourceAlreadyExists"
	CodeInUse                     = "ResourceInUse"
	CodeKubernetesVersion         = "KubernetesVersionNotSupported"
	CodeUpgradeChannel            = "NodeOSUpgradeChannelNotSupported"
	CodeWindowsPool               = "WindowsNodePoolNotSupported"
	CodeKubenet                   = "KubenetNotSupported"
	CodeExtension                 = "ExtensionNotSupported"
	CodeBlockWithCustomVNet       = "BlockOutboundRequiresManagedVNet"
	CodeOutboundNeedsCache        = "OutboundTypeRequiresCache"
	CodeRegistryNotUsable         = "BootstrapRegistryNotUsable"
	CodeRequiredRuleMissing       = "BootstrapCacheRuleMissing"
	CodeRequiredRuleModified      = "BootstrapCacheRuleModified"
	CodePrivateEndpointMissing    = "BootstrapPrivateEndpointMissing"
	CodeCredentialSetNotFound     = "CredentialSetNotFound"
	CodeConfigRule                = "CacheRuleDefinedInConfig"
	CodeRuleConflictsWithConfig   = "CacheRuleConflictsWithConfig"
	CodeCredentialSetUnresolvable = "CredentialSetSecretUnavailable"
	CodeDirectNeedsNoNodeConfig   = "BootstrapArtifactSourceDirect"
)

// Error is a refused request: a code naming the problem and a message
// naming the limitation.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	kind    error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns ErrInvalid, ErrNotFound or ErrConflict.
func (e *Error) Unwrap() error { return e.kind }

// NewError returns an *Error of the given kind (ErrInvalid, ErrNotFound or
// ErrConflict); clients of the admin API rebuild errors with it.
func NewError(kind error, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), kind: kind}
}

func invalid(code, format string, args ...any) error {
	return NewError(ErrInvalid, code, format, args...)
}

func notFound(format string, args ...any) error {
	return NewError(ErrNotFound, CodeNotFound, format, args...)
}

func conflict(code, format string, args ...any) error {
	return NewError(ErrConflict, code, format, args...)
}

// ruleError turns a rules validation error into an *Error with its code.
func ruleError(err error) error {
	var ve *rules.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	kind := ErrInvalid
	if errors.Is(err, rules.ErrNotFound) {
		kind = ErrNotFound
	}
	return &Error{Code: string(ve.Code), Message: fmt.Sprintf("cache rule %q: %s", ve.Rule, ve.Reason), kind: kind}
}
