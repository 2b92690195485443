package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is a long-running program the testbed started inside a network
// namespace (etcd, kube-apiserver, kube-proxy, an echo server, or a proxy
// under test). Its stdout and stderr go to LogPath. The testbed stops it at
// teardown; Stop may also be called earlier.
type Process struct {
	// Name is a short label used in errors and the log file name.
	Name string
	// Netns is the network namespace it runs in.
	Netns string
	// LogPath is the file receiving its stdout and stderr.
	LogPath string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
}

// startProcess runs argv inside netns via `ip netns exec`, logging to
// dir/<name>.log. env nil means the test process's environment.
func startProcess(dir, name, netns string, env []string, argv ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If the test binary is killed (go test -timeout, Ctrl-C) the kernel
	// kills its children too; the namespaces are then removed by the next
	// run's Cleanup. `ip netns exec` execs in place, so the signal reaches
	// the program itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s in netns %s: %w", name, netns, err)
	}
	process := &Process{Name: name, Netns: netns, LogPath: logPath, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		process.waitErr = cmd.Wait()
		logFile.Close()
		close(process.done)
	}()
	return process, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to 5 s, then SIGKILLs. Stopping an exited
// process is a no-op.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 5s after SIGKILL", p.Name, p.Pid())
	}
}

// Tail returns the last n lines of the process log, for error messages.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitForLog waits until the process log contains want, failing early if
// the process exits.
func (p *Process) waitForLog(ctx context.Context, want string, timeout time.Duration) error {
	return poll(ctx, timeout, fmt.Sprintf("%s to log %q", p.Name, want), func(context.Context) error {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%w: %s exited (%v); last log lines:\n%s", errStopPolling, p.Name, err, p.Tail(20))
		}
		data, err := os.ReadFile(p.LogPath)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(want)) {
			return nil
		}
		return fmt.Errorf("last log line %q", lastLine(data))
	})
}

func lastLine(data []byte) string {
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	return string(lines[len(lines)-1])
}

// errStopPolling, wrapped in a condition's error, ends poll at once.
var errStopPolling = errors.New("giving up")

// poll calls condition until it returns nil, timeout passes, ctx ends, or it
// returns an error wrapping errStopPolling. The error says what was awaited
// and what the last attempt saw. The interval starts at 10 ms and doubles up
// to 200 ms: most waits (an echo server binding its ports) end within a few
// milliseconds, and setting up a hundred pods should not cost a hundred
// fixed sleeps.
func poll(ctx context.Context, timeout time.Duration, what string, condition func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	interval := 10 * time.Millisecond
	for {
		err := condition(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, errStopPolling) {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: gave up after %s; last seen: %w", what, time.Since(start).Round(time.Millisecond), err)
		case <-time.After(interval):
		}
		interval = min(2*interval, 200*time.Millisecond)
	}
}
