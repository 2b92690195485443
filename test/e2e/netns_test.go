package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// listenUDPIn opens a UDP socket inside a testbed namespace (the socket
// stays there after the thread switches back), bound to a fixed ephemeral
// port: a client whose every datagram shares one conntrack entry, as a
// long-lived UDP sender does, which syecho's fresh socket per datagram
// cannot be.
func listenUDPIn(netns string) (*net.UDPConn, error) {
	target, err := os.Open(filepath.Join("/run/netns", netns))
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type result struct {
		conn *net.UDPConn
		err  error
	}
	done := make(chan result, 1)
	// A dedicated goroutine: if switching back fails, the thread stays
	// locked and dies with it instead of running other code in the wrong
	// namespace.
	go func() {
		runtime.LockOSThread()
		original, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer original.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns %s: %w", netns, err)}
			return
		}
		conn, listenErr := net.ListenUDP("udp", &net.UDPAddr{})
		if err := unix.Setns(int(original.Fd()), unix.CLONE_NEWNET); err != nil {
			if conn != nil {
				conn.Close()
			}
			done <- result{err: fmt.Errorf("returning from netns %s: %w", netns, err)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{conn, listenErr}
	}()
	r := <-done
	return r.conn, r.err
}
