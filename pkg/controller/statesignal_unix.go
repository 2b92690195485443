//go:build unix

package controller

import (
	"os"
	"syscall"
)

// dumpSignals make the daemon log its state dump.
var dumpSignals = []os.Signal{syscall.SIGUSR1}
