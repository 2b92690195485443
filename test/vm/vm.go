package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout  = 2 * time.Minute
	DefaultMemoryMB = 512
	DefaultCPUs     = 1
)

// GuestEnv is set to "1" in the environment of every command run in the guest. Code that
// programs the kernel (IPVS, iptables) checks it so that it never runs on the host by mistake.
const GuestEnv = "SWITCHYARD_VM_GUEST"

// ErrNoExitStatus means the guest stopped (or was stopped) before the command's end marker
// appeared: a timeout, a kernel panic, or QEMU failing to start. Result.Console holds what the
// guest printed.
var ErrNoExitStatus = errors.New("guest did not report an exit status")

// Config describes one guest run.
type Config struct {
	// Command is the program and its arguments, run by /init in the guest (looked up in
	// /usr/sbin, /usr/bin, /sbin, /bin). Required.
	Command []string
	// Env is added to the command's environment, "KEY=value" each. The guest starts with PATH,
	// HOME=/root, TMPDIR=/tmp and SWITCHYARD_VM_GUEST=1.
	Env []string
	// Dir is the command's working directory in the guest; "/" when empty.
	Dir string
	// Files maps guest paths to host paths to copy into the guest, e.g.
	// {"/usr/local/bin/vm.test": "/tmp/x/vm.test"}. A host directory is copied recursively. File
	// modes are kept; programs must be static (built with CGO_ENABLED=0).
	Files map[string]string

	// Kernel is the kernel to boot; nil loads DefaultKernelDir().
	Kernel *Kernel
	// Modules replaces DefaultModules when non-nil; names or globs ("ip_set_hash_*").
	Modules []string
	// ExtraModules are loaded in addition to Modules (or DefaultModules).
	ExtraModules []string
	// KernelArgs are appended to the kernel command line, e.g. "loglevel=7" to see the boot
	// messages that "quiet" hides.
	KernelArgs []string
	// Network, when set, gives the guest a NIC on QEMU's user-mode network.
	Network *NetConfig

	// Timeout bounds the whole run, boot included; DefaultTimeout when zero.
	Timeout time.Duration
	// MemoryMB is the guest's RAM; DefaultMemoryMB when zero. The initramfs lives in it.
	MemoryMB int
	// CPUs is the number of virtual CPUs; DefaultCPUs when zero.
	CPUs int
	// Accel forces "tcg" or "kvm". Empty chooses KVM only when /proc/cpuinfo shows vmx or svm
	// and /dev/kvm opens: a /dev/kvm backed by nested software virtualisation (kvm_pvm) cannot
	// boot a stock kernel ("emulation failure" on cmpxchg16b).
	Accel string
	// QEMU is the emulator binary; "qemu-system-x86_64" when empty.
	QEMU string

	// Output receives the serial console as it arrives, carriage returns stripped: kernel
	// messages, /init's progress and the command's output. Typically a writer on t.Log. May be
	// nil.
	Output io.Writer
}

// NetConfig attaches the guest to QEMU's user-mode network (slirp): the guest is 10.0.2.15/24
// on eth0 with a default route via 10.0.2.2, which QEMU maps to the loopback of the network
// namespace QEMU runs in, and DNS at 10.0.2.3. Nothing is configured on the host: QEMU opens
// ordinary sockets for the guest's connections.
type NetConfig struct {
	// HostNetNS, when set, is a named network namespace (/run/netns/<name>) to start QEMU in,
	// with "ip netns exec", so that the guest's 10.0.2.2 reaches that namespace's loopback,
	// for example a kube-apiserver of a test bed listening on 127.0.0.1 there.
	HostNetNS string
}

// Result is the outcome of a run.
type Result struct {
	// ExitCode is the command's exit status in the guest (128+n when killed by signal n), or
	// -1 when the guest did not report one.
	ExitCode int
	// Output is what the command wrote to stdout and stderr, without the console's carriage
	// returns and without kernel messages above the alert level.
	Output string
	// Console is everything the guest printed on its serial console.
	Console string
	// Accel is the accelerator used, "tcg" or "kvm".
	Accel string
	// BuildTime is the time spent assembling the initramfs on the host.
	BuildTime time.Duration
	// BootTime is the time from starting QEMU until the command started in the guest.
	BootTime time.Duration
	// RunTime is the time the command ran, as measured by the guest's clock.
	RunTime time.Duration
	// Total is the wall time of the whole run, build and shutdown included.
	Total time.Duration
}

// Run boots a guest, runs cfg.Command in it, and returns its exit status and output. A non-zero
// exit status is not an error; the error reports failures to build or boot the guest, or a
// guest that stopped without reporting a status (ErrNoExitStatus, with the partial console in
// the Result). QEMU is killed when ctx is done or the timeout expires, and temporary files are
// removed in all cases.
func Run(ctx context.Context, cfg Config) (Result, error) {
	start := time.Now()
	res := Result{ExitCode: -1}
	if len(cfg.Command) == 0 {
		return res, errors.New("vm: Config.Command is empty")
	}
	cfg = withDefaults(cfg)
	k := cfg.Kernel
	if k == nil {
		dir, err := DefaultKernelDir()
		if err != nil {
			return res, err
		}
		if k, err = loadKernelCached(dir); err != nil {
			return res, err
		}
	}
	accel, err := chooseAccel(cfg.Accel)
	if err != nil {
		return res, err
	}
	res.Accel = accel

	moduleNames := append(append([]string(nil), cfg.Modules...), cfg.ExtraModules...)
	if cfg.Network != nil {
		moduleNames = append(moduleNames, networkModules...)
	}
	base, err := cachedBase(k, moduleNames)
	if err != nil {
		return res, err
	}
	nonce, err := newNonce()
	if err != nil {
		return res, err
	}
	runArchive, err := buildRunArchive(cfg, k, base, nonce)
	if err != nil {
		return res, err
	}

	work, err := os.MkdirTemp("", "switchyard-vm-")
	if err != nil {
		return res, fmt.Errorf("vm: %w", err)
	}
	defer os.RemoveAll(work)
	initrd := filepath.Join(work, "initrd")
	// The kernel looks for an uncompressed archive only at 4-byte aligned offsets and skips
	// the zero padding between archives.
	image := append([]byte(nil), base.archive...)
	image = append(image, make([]byte, (4-len(image)%4)%4)...)
	image = append(image, runArchive...)
	if err := os.WriteFile(initrd, image, 0o600); err != nil {
		return res, fmt.Errorf("vm: writing initrd: %w", err)
	}
	res.BuildTime = time.Since(start)

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	argv := qemuArgs(cfg, k, accel, initrd)
	if cfg.Network != nil && cfg.Network.HostNetNS != "" {
		if _, err := os.Stat(filepath.Join("/run/netns", cfg.Network.HostNetNS)); err != nil {
			return res, fmt.Errorf("vm: host network namespace %q: %w", cfg.Network.HostNetNS, err)
		}
		// ip execs QEMU in place, so killing the process kills QEMU.
		argv = append([]string{"ip", "netns", "exec", cfg.Network.HostNetNS}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = nil // /dev/null: the guest gets no input
	cmd.WaitDelay = 5 * time.Second
	killWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, fmt.Errorf("vm: %w", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr

	bootStart := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("vm: starting %s: %w", argv[0], err)
	}
	console := &consoleReader{nonce: nonce, out: cfg.Output}
	console.read(stdout, bootStart)
	waitErr := cmd.Wait()
	res.Total = time.Since(start)

	res.Console = console.text.String()
	status, output, ok := parseConsole(res.Console, nonce)
	if !ok {
		reason := waitErr
		if ctx.Err() != nil {
			reason = fmt.Errorf("after %s: %w", cfg.Timeout, ctx.Err())
		}
		return res, fmt.Errorf("vm: %w (qemu: %v; stderr: %s)", ErrNoExitStatus, reason, qemuStderr(stderr.String()))
	}
	res.ExitCode = status.exitCode
	res.Output = output
	res.BootTime = console.begin.Sub(bootStart)
	res.RunTime = status.runTime
	return res, nil
}

// qemuStderr trims QEMU's standard error for an error message, dropping the warning that the
// SeaBIOS fw_cfg item is not under "opt/" (SeaBIOS reads it only under its own name).
func qemuStderr(stderr string) string {
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.Contains(line, "etc/sercon-port") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

func withDefaults(cfg Config) Config {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = DefaultCPUs
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.Modules == nil {
		cfg.Modules = DefaultModules
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	}
	return cfg
}

// chooseAccel picks the accelerator: KVM needs hardware virtualisation (vmx or svm).
func chooseAccel(forced string) (string, error) {
	switch forced {
	case "tcg", "kvm":
		return forced, nil
	case "":
	default:
		return "", fmt.Errorf("vm: unknown accelerator %q (want tcg or kvm)", forced)
	}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "tcg", nil
	}
	if !regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`).Match(cpuinfo) {
		return "tcg", nil
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg", nil
	}
	f.Close()
	return "kvm", nil
}

func qemuArgs(cfg Config, k *Kernel, accel, initrd string) []string {
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	args := []string{
		cfg.QEMU,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", "pc", "-accel", accel, "-cpu", cpu,
		"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMB),
		"-serial", "stdio", "-monitor", "none",
		// Keep SeaBIOS off the serial console: its escape sequences would clutter the log.
		"-fw_cfg", "name=etc/sercon-port,string=0",
		"-kernel", k.Image, "-initrd", initrd,
		// panic=-1 with -no-reboot turns a kernel panic into a prompt QEMU exit.
		// no_timer_check: under software emulation on a loaded host the kernel's
		// IO-APIC timer check can miss its window and panic ("IO-APIC + timer
		// doesn't work"); the check guards against broken hardware, not QEMU.
		"-append", strings.Join(append([]string{"console=ttyS0 panic=-1 quiet rdinit=/init no_timer_check"}, cfg.KernelArgs...), " "),
	}
	if cfg.Network != nil {
		// romfile= skips loading the iPXE option ROM, which is only for network boot.
		args = append(args, "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=")
	}
	return args
}

func newNonce() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("vm: nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Marker lines around the command's output. The nonce keeps a command that prints a marker of
// its own from faking its exit status.
const (
	beginMarker = "SWITCHYARD-VM-BEGIN"
	endMarker   = "SWITCHYARD-VM-END"
)

// consoleReader copies the console to Output line by line and notes when the begin marker
// arrives.
type consoleReader struct {
	nonce string
	out   io.Writer
	text  strings.Builder
	begin time.Time
}

func (c *consoleReader) read(r io.Reader, start time.Time) {
	br := bufio.NewReader(r)
	begin := beginMarker + " " + c.nonce
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.ReplaceAll(line, "\r", "")
			c.text.WriteString(line)
			if c.begin.IsZero() && strings.Contains(line, begin) {
				c.begin = time.Now()
			}
			if c.out != nil {
				_, _ = io.WriteString(c.out, line)
			}
		}
		if err != nil {
			if c.begin.IsZero() {
				c.begin = start
			}
			return
		}
	}
}

type exitStatus struct {
	exitCode int
	runTime  time.Duration
}

// parseConsole extracts the command's output and status from the console text. /init prints
//
//	SWITCHYARD-VM-BEGIN <nonce> uptime=<seconds>
//	<output>
//	SWITCHYARD-VM-END <nonce> exit=<status> uptime=<seconds>
//
// with a newline before the end marker so that output without a final newline still ends its
// line; that newline is not part of the output.
func parseConsole(console, nonce string) (exitStatus, string, bool) {
	beginRE := regexp.MustCompile(`(?m)^` + beginMarker + ` ` + nonce + ` uptime=([0-9.]+)\n`)
	endRE := regexp.MustCompile(`\n` + endMarker + ` ` + nonce + ` exit=([0-9]+) uptime=([0-9.]+)\n`)
	b := beginRE.FindStringSubmatchIndex(console)
	if b == nil {
		return exitStatus{}, "", false
	}
	rest := console[b[1]:]
	e := endRE.FindStringSubmatchIndex(rest)
	if e == nil {
		return exitStatus{}, "", false
	}
	code, err := strconv.Atoi(rest[e[2]:e[3]])
	if err != nil {
		return exitStatus{}, "", false
	}
	status := exitStatus{exitCode: code}
	t0, err0 := strconv.ParseFloat(console[b[2]:b[3]], 64)
	t1, err1 := strconv.ParseFloat(rest[e[4]:e[5]], 64)
	if err0 == nil && err1 == nil && t1 >= t0 {
		status.runTime = time.Duration((t1 - t0) * float64(time.Second))
	}
	return status, rest[:e[0]], true
}

var (
	cacheMu     sync.Mutex
	kernelCache = map[string]*Kernel{}
	baseCache   = map[string]*baseImage{}
)

// loadKernelCached loads a kernel once per process.
func loadKernelCached(dir string) (*Kernel, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if k, ok := kernelCache[dir]; ok {
		return k, nil
	}
	k, err := LoadKernel(dir)
	if err != nil {
		return nil, err
	}
	kernelCache[dir] = k
	return k, nil
}

// cachedBase builds the base archive once per process for each kernel and module list.
func cachedBase(k *Kernel, moduleNames []string) (*baseImage, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	key := k.Dir + "\x00" + strings.Join(moduleNames, ",")
	if base, ok := baseCache[key]; ok {
		return base, nil
	}
	modules, err := k.ResolveModules(moduleNames)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	base, err := buildBase(k, modules)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	baseCache[key] = base
	return base, nil
}
