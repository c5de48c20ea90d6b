//go:build !linux

package kubetest

import "syscall"

// sysProcAttr returns nil because only Linux can tie a child's life to its
// parent, so elsewhere a test binary that dies leaves the components running.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
