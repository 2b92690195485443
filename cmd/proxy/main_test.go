package main

import (
	"os"
	"testing"
)

// asMainEnv makes the test binary run as switchyard's main, for the tests that need a
// program to call (shell completion asks `switchyard __complete ...`).
const asMainEnv = "SWITCHYARD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(execute("switchyard", os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
