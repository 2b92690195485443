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

// Limits of a transaction the netlink writer sends as one batch: the batch travels in
// one datagram, which must fit the socket's send buffer (212,992 bytes by default), and
// one ack per message comes back into the receive buffer. A bigger transaction (a full
// sync, a namespace deleted at once) goes through nft, whose own cost is then small
// next to the kernel's.
const (
	maxBatchMessages = 1000
	maxBatchBytes    = 128 << 10
)

// batchTimeout bounds one batch's round trip.
const batchTimeout = 30 * time.Second

// Run implements Kernel: a transaction the compiler knows (compile.go), small enough
// for one datagram, goes to the kernel as one nf_tables batch over netlink; any other
// through the nft binary. Both are atomic: the kernel takes a batch whole or not at all.
func (k *netlinkKernel) Run(ctx context.Context, tx *knftables.Transaction) error {
	if tx.NumOperations() <= maxBatchMessages {
		if msgs, ok := compileTransaction(tx.String(), k.family); ok && batchSize(msgs) <= maxBatchBytes && len(msgs) <= maxBatchMessages {
			k.lastWriter = WriterNetlink
			return k.sendBatch(ctx, msgs)
		}
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

// sendBatch sends msgs between a batch's begin and end in one datagram and reads an
// ack for each: the kernel applies the batch whole, or reports the first message it
// refused and applies nothing.
func (k *netlinkKernel) sendBatch(ctx context.Context, msgs []netlink.Message) error {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer conn.Close()
	// The kernel's extended ack names what it refused (and where); an error still
	// reads without it on a kernel that lacks it.
	_ = conn.SetOption(netlink.ExtendedAcknowledge, true)
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
	pending := make(map[uint32]bool, len(msgs))
	for i := range batch {
		seq++
		batch[i].Header.Sequence = seq
		if i > 0 && i < len(batch)-1 {
			pending[seq] = true
		}
	}
	if _, err := conn.SendMessages(batch); err != nil {
		return fmt.Errorf("sending an nftables batch of %d messages: %w", len(msgs), err)
	}
	for len(pending) > 0 {
		replies, err := conn.Receive()
		if err != nil {
			var op *netlink.OpError
			if errors.As(err, &op) && errors.Is(op.Err, unix.ENOENT) {
				return fmt.Errorf("nftables batch of %d messages: %w", len(msgs), errNotFound)
			}
			return fmt.Errorf("nftables batch of %d messages: %w", len(msgs), err)
		}
		for _, r := range replies {
			delete(pending, r.Header.Sequence)
		}
	}
	return nil
}
