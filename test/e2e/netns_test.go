package e2e

import (
	"net"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// listenUDPIn opens a UDP socket inside a testbed namespace (the socket
// stays there after the thread switches back), bound to a fixed ephemeral
// port: a client whose every datagram shares one conntrack entry, as a
// long-lived UDP sender does, which syecho's fresh socket per datagram
// cannot be.
func listenUDPIn(netns string) (*net.UDPConn, error) {
	return testbed.SocketIn(netns, func() (*net.UDPConn, error) {
		return net.ListenUDP("udp", &net.UDPAddr{})
	})
}
