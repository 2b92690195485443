// Command vmexec is a "go test -exec" wrapper that runs a test binary inside a throwaway QEMU
// guest with a real IPVS kernel (see package github.com/switchyard-io/switchyard/test/vm):
//
//	CGO_ENABLED=0 go test -tags vmguest -exec "go run $PWD/test/vm/cmd/vmexec" ./test/e2e/ipvs/
//
// go test runs the wrapper in the package directory, so give its absolute path, or build it
// first (go build -o bin/vmexec ./test/vm/cmd/vmexec; -exec "$PWD/bin/vmexec"). The binary must
// be static (CGO_ENABLED=0). The package's testdata directory, when there is one, is copied to
// /src/testdata in the guest and the test runs in /src, as go test would run it in the package
// directory. The exit status of the test binary becomes vmexec's.
//
// Settings come from the environment:
//
//	SWITCHYARD_VM_TIMEOUT   the whole run, boot included (a Go duration; default 10m)
//	SWITCHYARD_VM_NETNS     start QEMU in this host network namespace and give the guest a NIC
//	SWITCHYARD_VM_MEMORY    guest RAM in MiB (default 512)
//	SWITCHYARD_VM_VERBOSE   "1" streams the whole serial console (kernel included) to stderr
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/switchyard-io/switchyard/test/vm"
)

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vmexec TEST-BINARY [ARGS...]")
		return 2
	}
	cfg, err := configFromEnv(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmexec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := vm.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmexec:", err)
		if os.Getenv("SWITCHYARD_VM_VERBOSE") != "1" {
			fmt.Fprint(os.Stderr, res.Console)
		}
		return 1
	}
	if cfg.Output == nil {
		fmt.Print(res.Output)
	}
	fmt.Fprintf(os.Stderr, "vmexec: %s guest: boot %v, test %v, total %v\n", res.Accel,
		res.BootTime.Round(time.Millisecond), res.RunTime.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	return res.ExitCode
}

func configFromEnv(binary string, args []string) (vm.Config, error) {
	bin, err := filepath.Abs(binary)
	if err != nil {
		return vm.Config{}, fmt.Errorf("test binary %s: %w", binary, err)
	}
	guestBin := "/usr/local/bin/" + filepath.Base(bin)
	cfg := vm.Config{
		Files:   map[string]string{guestBin: bin},
		Command: append([]string{guestBin}, args...),
		Timeout: 10 * time.Minute,
	}
	if fi, err := os.Stat("testdata"); err == nil && fi.IsDir() {
		cfg.Files["/src/testdata"] = "testdata"
		cfg.Dir = "/src"
	}
	if v := os.Getenv("SWITCHYARD_VM_TIMEOUT"); v != "" {
		if cfg.Timeout, err = time.ParseDuration(v); err != nil {
			return vm.Config{}, fmt.Errorf("SWITCHYARD_VM_TIMEOUT: %w", err)
		}
	}
	if v := os.Getenv("SWITCHYARD_VM_MEMORY"); v != "" {
		if cfg.MemoryMB, err = strconv.Atoi(v); err != nil {
			return vm.Config{}, fmt.Errorf("SWITCHYARD_VM_MEMORY: %w", err)
		}
	}
	if ns := os.Getenv("SWITCHYARD_VM_NETNS"); ns != "" {
		cfg.Network = &vm.NetConfig{HostNetNS: ns}
	}
	if os.Getenv("SWITCHYARD_VM_VERBOSE") == "1" {
		cfg.Output = io.Writer(os.Stderr)
	}
	return cfg, nil
}
