package kubetest

import "syscall"

// sysProcAttr makes the kernel kill a component when the test binary dies,
// for example on a `go test -timeout` panic, which runs no t.Cleanup.
//
// NOTE: Linux sends the signal when the OS thread that started the child
// exits, not the whole process. The Go runtime ends a thread only when a
// goroutine exits while locked to it with runtime.LockOSThread, so a test
// that does that can kill a running cluster.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
