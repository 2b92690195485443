//go:build linux

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// Netlink is the Interface over the kernel's conntrack netlink API (no conntrack
// binary needed). Its zero value acts on the network namespace of the calling thread.
//
// Its cost is bounded, whatever the size of the table (kubernetes#129982, #135323:
// kube-proxy's cleanup read the whole table into memory after every sync, up to 12 GB
// on busy nodes):
//   - the kernel filters each dump (CTA_FILTER, Linux ≥ 5.9) so that only UDP entries
//     to one service address and port, or to one node port (StaleUDP.Dumps), come to
//     user space — or, past MaxFilteredDumps such dumps, only UDP entries; an older kernel ignores the filter and sends everything, which
//     StaleUDP.Match then sorts out — the filter only saves work, it decides nothing;
//   - the dump is streamed through one fixed receive buffer and never held in memory;
//   - stale entries are deleted as the dump goes, in batches of at most
//     deleteBatch messages in one send, each by its full original tuple, zone and
//     conntrack ID, so an entry recreated since the dump (a new ID) is not deleted.
//
// Memory is therefore constant (the receive buffer and one delete batch, about
// 200 KiB); time is one kernel walk of the table per dump. docs/reliability.md has the
// figures.
type Netlink struct {
	// NetNS, if set, is the path of the network namespace to act in (as
	// /var/run/netns/NAME); the sockets are opened there. Tests use it.
	NetNS string
	// MaxFilteredDumps is how many dumps filtered by the kernel on UDP and a
	// destination (StaleUDP.Dumps) a cleanup may take; with more, one dump filtered
	// on UDP alone is read instead. 0 means defaultMaxFilteredDumps.
	MaxFilteredDumps int
}

var _ Interface = Netlink{}

// defaultMaxFilteredDumps bounds the kernel walks of one cleanup: a one-endpoint
// change of a UDP service needs one for its cluster IP, one for its node port on
// every node address, and one per external or load-balancer address; the start-up
// cleanup of every UDP service takes one walk instead of one per frontend. Each walk
// visits the host's whole hash table (45–190 ms here at 20k–250k entries,
// docs/reliability.md), while the UDP-only dump costs that plus 2–6 µs per UDP entry
// of the namespace, parsed in user space.
const defaultMaxFilteredDumps = 8

// ErrDumpInterrupted says the kernel's table changed shape (a resize) during a dump,
// so entries may have been missed: the caller should try again later.
var ErrDumpInterrupted = errors.New("conntrack dump interrupted, entries may have been missed")

// DeleteStale implements Interface.
func (n Netlink) DeleteStale(ctx context.Context, family v1.IPFamily, filter *StaleUDP) (Result, error) {
	var res Result
	dumps := filter.Dumps(family)
	if len(dumps) == 0 {
		return res, nil
	}
	af := uint8(unix.AF_INET)
	if family == v1.IPv6Protocol {
		af = unix.AF_INET6
	}
	dumpSock, err := openSocket(n.NetNS)
	if err != nil {
		return res, err
	}
	defer dumpSock.close()
	delSock, err := openSocket(n.NetNS)
	if err != nil {
		return res, err
	}
	defer delSock.close()
	d := &deleter{sock: delSock, family: af}

	max := n.MaxFilteredDumps
	if max <= 0 {
		max = defaultMaxFilteredDumps
	}
	var errs []error
	if len(dumps) > max {
		dumps = []Dump{{}} // UDP alone
	}
	for _, dump := range dumps {
		if err := dumpStale(ctx, dumpSock, dumpRequest(af, unix.IPPROTO_UDP, dump), filter, d, &res); err != nil {
			errs = append(errs, fmt.Errorf("dump of UDP entries to %s: %w", dump, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	if err := d.flush(); err != nil {
		errs = append(errs, err)
	}
	res.Deleted = d.deleted
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("deleting stale %s conntrack entries: %w", family, err)
	}
	return res, nil
}

// dumpStale runs one dump and hands every entry Match selects to d.
func dumpStale(ctx context.Context, sock *socket, req []byte, filter *StaleUDP, d *deleter, res *Result) error {
	res.Dumps++
	seq := sock.nextSeq()
	setSeq(req, seq)
	if err := sock.send(req); err != nil {
		return err
	}
	interrupted := false
	for {
		if err := ctx.Err(); err != nil {
			return err // closing the socket ends the kernel's side of the dump
		}
		msgs, err := sock.receive()
		if err != nil {
			return err
		}
		for len(msgs) > 0 {
			hdr, body, rest, err := nextMessage(msgs)
			if err != nil {
				return err
			}
			msgs = rest
			if hdr.Seq != seq {
				continue
			}
			if hdr.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch hdr.Type {
			case unix.NLMSG_DONE:
				if interrupted {
					return ErrDumpInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if errno := ackErrno(body); errno != 0 {
					return errno
				}
				continue
			}
			e, ok := parseEntry(body)
			if !ok {
				continue
			}
			res.Read++
			if !filter.Match(e.flow()) {
				continue
			}
			if err := d.add(e); err != nil {
				return err
			}
		}
	}
}

// socket is a NETLINK_NETFILTER socket with its own receive buffer.
type socket struct {
	fd  int
	seq uint32
	buf []byte
}

// receiveBufferSize is the size of the one buffer a dump is read through: the kernel
// fills at most this much per read (it sizes its dump messages to the reader's buffer,
// up to 32 KiB), so a dump never holds more than this in user space.
const receiveBufferSize = 64 << 10

// openSocket opens a conntrack netlink socket, in the network namespace at nsPath if
// set (the socket stays there once the thread has switched back).
func openSocket(nsPath string) (*socket, error) {
	open := func() (*socket, error) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("binding a netfilter netlink socket: %w", err)
		}
		return &socket{fd: fd, buf: make([]byte, receiveBufferSize)}, nil
	}
	if nsPath == "" {
		return open()
	}
	type result struct {
		sock *socket
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer target.Close()
		original, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer original.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("entering network namespace %s: %w", nsPath, err)}
			return
		}
		sock, openErr := open()
		if err := unix.Setns(int(original.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and exits with this goroutine.
			if sock != nil {
				sock.close()
			}
			done <- result{err: fmt.Errorf("leaving network namespace %s: %w", nsPath, err)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{sock, openErr}
	}()
	r := <-done
	return r.sock, r.err
}

func (s *socket) nextSeq() uint32 {
	s.seq++
	return s.seq
}

func (s *socket) close() { unix.Close(s.fd) }

func (s *socket) send(b []byte) error {
	for {
		err := unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// receive reads one datagram into the socket's buffer; the result is valid until
// the next receive.
func (s *socket) receive() ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return s.buf[:n], nil
	}
}

// deleter sends delete requests in batches and counts what the kernel deleted.
type deleter struct {
	sock    *socket
	family  uint8
	batch   []byte
	pending int
	deleted int
	gone    int
	failed  int
	lastErr error
}

// deleteBatch is how many delete requests go in one send: about 100 bytes each, and
// the acknowledgements (36 bytes each) fit the socket's default receive buffer.
const deleteBatch = 1024

func (d *deleter) add(e entry) error {
	d.batch = appendDelete(d.batch, d.family, d.sock.nextSeq(), e)
	d.pending++
	if d.pending >= deleteBatch {
		return d.flush()
	}
	return nil
}

// flush sends the batch and reads one acknowledgement per request. An entry already
// gone (it expired, or it was recreated with a new ID) is not counted as deleted.
func (d *deleter) flush() error {
	if d.pending == 0 {
		return nil
	}
	defer func() { d.batch, d.pending = d.batch[:0], 0 }()
	if err := d.sock.send(d.batch); err != nil {
		return fmt.Errorf("sending %d conntrack deletes: %w", d.pending, err)
	}
	for acks := 0; acks < d.pending; {
		msgs, err := d.sock.receive()
		if err != nil {
			return fmt.Errorf("reading conntrack delete acknowledgements: %w", err)
		}
		for len(msgs) > 0 {
			hdr, body, rest, err := nextMessage(msgs)
			if err != nil {
				return err
			}
			msgs = rest
			if hdr.Type != unix.NLMSG_ERROR {
				continue
			}
			acks++
			switch errno := ackErrno(body); errno {
			case 0:
				d.deleted++
			case unix.ENOENT:
				d.gone++
			default:
				d.failed++
				d.lastErr = errno
			}
		}
	}
	if d.lastErr != nil {
		err := fmt.Errorf("%d conntrack deletes failed, the last with: %w", d.failed, d.lastErr)
		d.failed, d.lastErr = 0, nil
		return err
	}
	return nil
}
