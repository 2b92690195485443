package nftables

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// maxBatchBytes bounds a batch the netlink writer sends: the batch travels in one
// datagram, for which the socket's send buffer is raised (nft does the same). A
// transaction whose batch would be bigger goes through nft.
const maxBatchBytes = 64 << 20

// batchTimeout bounds one batch's round trip.
const batchTimeout = 30 * time.Second

// Run implements Kernel: a transaction the compiler knows (compile.go), up to
// maxBatchBytes, goes to the kernel as one nf_tables batch over netlink; any other
// through the nft binary. Both are atomic: the kernel takes a batch whole or not at all.
func (k *netlinkKernel) Run(ctx context.Context, tx *knftables.Transaction) error {
	if msgs, ok := compileTransaction(tx.String(), k.family); ok && batchSize(msgs) <= maxBatchBytes {
		k.lastWriter = WriterNetlink
		return k.sendBatch(ctx, msgs)
	}
	k.lastWriter = WriterNFT
	return k.Interface.Run(ctx, tx)
}

// How a Kernel wrote a transaction (SyncResult.Writer).
const (
	WriterNFT     = "nft"
	WriterNetlink = "netlink"
)

// WriterReporter is a Kernel that writes some transactions without the nft binary and
// says how it wrote the last one (the netlink Kernel). Run and LastWriter are called
// from one goroutine.
type WriterReporter interface {
	LastWriter() string
}

var _ WriterReporter = &netlinkKernel{}

// LastWriter implements WriterReporter.
func (k *netlinkKernel) LastWriter() string { return k.lastWriter }

// batchSize is the bytes msgs take on the wire.
func batchSize(msgs []netlink.Message) int {
	n := 0
	for _, m := range msgs {
		n += 16 + (len(m.Data)+3)/4*4 // nlmsghdr, then the payload padded
	}
	return n
}

// sendBatch sends msgs between a batch's begin and end in one datagram. Only the last
// message asks for an ack: the kernel processes every message of a batch even after one
// fails (to report every error), reports each error, then applies the batch whole or
// not at all; so the last ack, with no error before it, means the batch was applied,
// and a big batch does not fill the receive buffer with acks.
func (k *netlinkKernel) sendBatch(ctx context.Context, msgs []netlink.Message) error {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer conn.Close()
	// The kernel's extended ack names what it refused (and where); an error still
	// reads without it on a kernel that lacks it.
	_ = conn.SetOption(netlink.ExtendedAcknowledge, true)
	size := batchSize(msgs) + 2*(16+4)
	if err := forceSendBuffer(conn, size); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	// The batch's begin and end name the subsystem in nfgenmsg's res_id (big endian).
	marker := func(t int) netlink.Message {
		return netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
			Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
		}
	}
	seq := uint32(time.Now().UnixNano())
	batch := make([]netlink.Message, 0, len(msgs)+2)
	batch = append(batch, marker(unix.NFNL_MSG_BATCH_BEGIN))
	batch = append(batch, msgs...)
	batch = append(batch, marker(unix.NFNL_MSG_BATCH_END))
	for i := range batch {
		seq++
		batch[i].Header.Sequence = seq
	}
	last := &batch[len(batch)-2]
	last.Header.Flags |= netlink.Acknowledge
	if _, err := conn.SendMessages(batch); err != nil {
		return fmt.Errorf("sending an nftables batch of %d messages: %w", len(msgs), err)
	}
	for {
		replies, err := conn.Receive()
		if err != nil {
			var op *netlink.OpError
			if errors.As(err, &op) && errors.Is(op.Err, unix.ENOENT) {
				return fmt.Errorf("nftables batch of %d messages: %w", len(msgs), errNotFound)
			}
			return fmt.Errorf("nftables batch of %d messages: %w", len(msgs), err)
		}
		for _, r := range replies {
			if r.Header.Sequence == last.Header.Sequence {
				return nil
			}
		}
	}
}

// forceSendBuffer raises the socket's send buffer to hold size bytes, past the
// system's wmem_max (SO_SNDBUFFORCE, which the daemon's CAP_NET_ADMIN allows).
func forceSendBuffer(conn *netlink.Conn, size int) error {
	if size <= 200<<10 {
		return nil // the default buffer holds it
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size+4096)
	}); err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	if sockErr != nil {
		return fmt.Errorf("raising the netlink send buffer to %d bytes: %w", size, sockErr)
	}
	return nil
}
