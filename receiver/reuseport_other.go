//go:build !linux

package receiver

import "errors"

var errNoReusePort = errors.New("SO_REUSEPORT takeover is implemented on Linux only")

func reusePort(uintptr) error     { return nil }
func steerToNewest(uintptr) error { return errNoReusePort }
func unsteer(uintptr) error       { return nil }
