package iptables

import (
	"errors"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// Config holds the facts about this node that rules depend on, for one IP family. A
// dual-stack node renders twice, with one Config per family.
type Config struct {
	node.FamilyConfig
	// LocalhostNodePorts lets IPv4 node ports answer on 127.0.0.1. It needs
	// route_localnet (CVE-2020-8558), so unlike kube-proxy it is off by default; when on,
	// the martian-localnet drop rule is written too.
	LocalhostNodePorts bool
	// ConntrackTCPLiberal leaves out the ctstate INVALID drop rule: with
	// nf_conntrack_tcp_be_liberal=1 only out-of-window RSTs are INVALID, and kube-proxy
	// stops dropping them (kubernetes PR 120412).
	ConntrackTCPLiberal bool
	// NFAcct, when set, creates kube-proxy's nfacct counters at each full sync; the
	// INVALID drop rule and the localhost node-port rules then count packets into
	// them (-m nfacct). Nil, or a failure to create them, leaves the counting out, as
	// kube-proxy does on kernels without nfnetlink_acct.
	NFAcct nfacct.Interface
	// NFAcctCounters says the counters exist; the Proxier sets it on its copy of
	// the Config at each full sync, and Render writes -m nfacct only then.
	NFAcctCounters bool

	// hooks, set by the Proxier on its copy of the Config at each full sync when it
	// can read the tables, are the hooks and canaries the full payload adds (see
	// foldedHooks); nil leaves them out of the payload, for the Proxier to ensure one
	// by one.
	hooks *foldedHooks
}

// Validate reports every problem with the Config at once.
func (c *Config) Validate() error {
	err := c.FamilyConfig.Validate()
	if c.LocalhostNodePorts && c.Family == v1.IPv6Protocol {
		err = errors.Join(err, errors.New("localhost node ports are IPv4 only"))
	}
	return err
}
