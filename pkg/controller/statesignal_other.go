//go:build !unix

package controller

import "os"

// dumpSignals is empty where there is no SIGUSR1: /debug/state still serves the dump.
var dumpSignals []os.Signal
