//go:build !linux

package labnode

import (
	"errors"
	"net"
)

// ListenIn needs Linux's network namespaces.
func ListenIn(ns, addr string) (net.Listener, error) {
	return nil, errors.New("network namespaces need Linux")
}
