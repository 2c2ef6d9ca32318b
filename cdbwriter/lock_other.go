//go:build !linux

package cdbwriter

// addName: the abstract socket that survives a deleted lock file is
// Linux's; elsewhere the flock alone guards.
func (l *Lock) addName(string) error { return nil }

func (l *Lock) closeNames() {}
