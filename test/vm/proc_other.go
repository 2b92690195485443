//go:build !linux

package vm

import "os/exec"

// killWithParent does nothing outside Linux, which has no parent-death signal.
func killWithParent(cmd *exec.Cmd) {}
