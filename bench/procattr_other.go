//go:build !linux

package bench

import "syscall"

// childAttr is nil off Linux: children are stopped by Run only.
func childAttr() *syscall.SysProcAttr { return nil }
