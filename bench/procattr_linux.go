package bench

import "syscall"

// childAttr makes the kernel kill a child the bench started if the bench
// dies first, so a crashed or killed bench leaves nothing running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
