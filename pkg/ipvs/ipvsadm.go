package ipvs

import (
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// FormatIPVSAdm prints a virtual server and its real servers in `ipvsadm -Sn` format:
// "-A -t VIP:PORT -s SCHED [-p TIMEOUT]" then "-a -t VIP:PORT -r IP:PORT -m -w WEIGHT"
// per real server (-u for UDP, --sctp-service for SCTP).
func FormatIPVSAdm(vs VirtualServer, real []RealServer) string {
	var b strings.Builder
	svc := "-t " + vs.AddrPortString()
	switch vs.Protocol {
	case v1.ProtocolUDP:
		svc = "-u " + vs.AddrPortString()
	case v1.ProtocolSCTP:
		svc = "--sctp-service " + vs.AddrPortString()
	}
	fmt.Fprintf(&b, "-A %s -s %s", svc, vs.Scheduler)
	if vs.Flags&FlagPersistent != 0 {
		fmt.Fprintf(&b, " -p %d", vs.Timeout)
	}
	if vs.Flags&FlagSourceHash != 0 {
		// 0x10 is IP_VS_SVC_F_SCHED2, which ipvsadm names after the scheduler.
		if vs.Scheduler == "sh" || vs.Scheduler == "mh" {
			b.WriteString(" -b " + vs.Scheduler + "-port")
		} else {
			b.WriteString(" -b flag-2")
		}
	}
	b.WriteByte('\n')
	for _, r := range real {
		fmt.Fprintf(&b, "-a %s -r %s -m -w %d\n", svc, r.Addr, r.Weight)
	}
	return b.String()
}

// AddrPortString returns "VIP:PORT", with brackets around IPv6 addresses.
func (k Key) AddrPortString() string {
	return netip.AddrPortFrom(k.Addr, k.Port).String()
}
