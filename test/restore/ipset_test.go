package restore

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	vnetns "github.com/vishvananda/netns"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

// exampleSets has members of every one of kube-proxy's set types, in the forms the
// IPVS Proxier writes them: SCTP and UDP ports, host and prefix source networks.
func exampleSets(family v1.IPFamily) ipvs.Sets {
	if family == v1.IPv6Protocol {
		return ipvs.Sets{
			ipvs.SetLoopBack:               {"fd00:10::5,tcp:8080,fd00:10::5", "fd00:10::6,sctp:9,fd00:10::6"},
			ipvs.SetClusterIP:              {"fd00:96::1,tcp:80", "fd00:96::a,udp:53", "fd00:96::b,sctp:3868"},
			ipvs.SetLoadBalancerSourceCIDR: {"2001:db8::9,tcp:443,2001:db8:1::/48", "2001:db8::9,tcp:443,2001:db8:2::7"},
			ipvs.SetNodePortSCTP:           {"2001:db8::1,sctp:30001"},
			ipvs.SetNodePortTCP:            {"30080", "31000"},
			ipvs.SetIPVSIPs:                {"fd00:96::1", "fd00:96::a"},
		}
	}
	return ipvs.Sets{
		ipvs.SetLoopBack:               {"10.244.1.5,tcp:8080,10.244.1.5", "10.244.1.6,sctp:9,10.244.1.6"},
		ipvs.SetClusterIP:              {"10.96.0.1,tcp:443", "10.96.0.10,udp:53", "10.96.0.11,sctp:3868"},
		ipvs.SetLoadBalancerSourceIP:   {"192.0.2.9,tcp:443,198.51.100.7"},
		ipvs.SetLoadBalancerSourceCIDR: {"192.0.2.9,tcp:443,198.51.100.0/24", "192.0.2.9,udp:53,203.0.113.5"},
		ipvs.SetNodePortSCTP:           {"192.0.2.1,sctp:30001"},
		ipvs.SetNodePortTCP:            {"30080", "31000"},
		ipvs.SetNodePortUDP:            {"30053"},
		ipvs.SetHealthCheckNodePort:    {"32000"},
		ipvs.SetIPVSIPs:                {"10.96.0.1", "10.96.0.10", "192.0.2.9"},
	}
}

// netlinkSetsIn returns NetlinkIPSets bound to a namespace by name.
func netlinkSetsIn(t *testing.T, ns string) *ipvs.NetlinkIPSets {
	t.Helper()
	nsh, err := vnetns.GetFromName(ns)
	if err != nil {
		t.Fatalf("opening netns %s: %v", ns, err)
	}
	t.Cleanup(func() { nsh.Close() })
	sets, err := ipvs.NewNetlinkIPSetsAt(nsh)
	if err != nil {
		t.Fatalf("ipsets in %s: %v", ns, err)
	}
	t.Cleanup(sets.Close)
	return sets
}

// ipsetSave is `ipset save` in a namespace, without the random initval, members
// sorted (a hash lists them in an order its random seed decides).
func ipsetSave(t *testing.T, ns string) string {
	t.Helper()
	saved := regexp.MustCompile(` initval 0x[0-9a-f]+`).ReplaceAllString(inNetns(t, ns, nil, "ipset", "save"), "")
	lines := strings.Split(strings.TrimSpace(saved), "\n")
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && strings.HasPrefix(lines[j], "add ") {
			j++
		}
		slices.Sort(lines[i+1 : j])
		i = j
	}
	return strings.Join(lines, "\n")
}

// TestNetlinkIPSetsMatchTheIPSetProgram applies the same `ipset restore` payloads —
// the full one the IPVS Proxier writes and a delta of del and add lines with -exist —
// through NetlinkIPSets in one namespace and through the ipset program in another, and
// requires the kernel to hold the same sets, and Entries to read back what the program
// lists. mutation-checked: formatting a host network with its /32 in setMember.format,
// or dropping CIDR2 in setMember.entry, fails the "full" comparison; ignoring -exist
// (Replace always false) fails "delta".
func TestNetlinkIPSetsMatchTheIPSetProgram(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("ipset"); err != nil {
		t.Fatalf("ipset is missing: install it (hack/ci-deps.sh)")
	}
	ctx := context.Background()
	for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		t.Run(string(family), func(t *testing.T) {
			viaNetlink, viaProgram := netns(t, "nl"+string(family)), netns(t, "prog"+string(family))
			sets := netlinkSetsIn(t, viaNetlink)
			program := func(payload []byte) { inNetns(t, viaProgram, payload, "ipset", "restore") }
			same := func(step string) {
				t.Helper()
				if diff := cmp.Diff(ipsetSave(t, viaProgram), ipsetSave(t, viaNetlink)); diff != "" {
					t.Fatalf("%s: ipset save differs (-program +netlink):\n%s", step, diff)
				}
				for _, spec := range ipvs.SetSpecs {
					name := ipvs.SetName(spec.Name, family)
					got, err := sets.Entries(ctx, name)
					if err != nil {
						t.Fatalf("%s: Entries(%s): %v", step, name, err)
					}
					listed := programEntries(t, viaProgram, name)
					if diff := cmp.Diff(sorted(listed), sorted(got)); diff != "" {
						t.Fatalf("%s: Entries(%s) differs (-program +netlink):\n%s", step, name, diff)
					}
				}
			}

			full := exampleSets(family).RestoreFull(family)
			if err := sets.Restore(ctx, full); err != nil {
				t.Fatalf("full restore over netlink: %v", err)
			}
			program(full)
			same("full")

			// A second full restore finds every set there (create -exist) and swaps.
			if err := sets.Restore(ctx, full); err != nil {
				t.Fatalf("second full restore over netlink: %v", err)
			}
			program(full)
			same("full again")

			delta := deltaPayload(family)
			if err := sets.Restore(ctx, delta); err != nil {
				t.Fatalf("delta over netlink: %v", err)
			}
			program(delta)
			same("delta")
		})
	}
}

// deltaPayload is a delta as setDelta.restore writes it: deletions first, each line
// with -exist, including a member that is absent and one that is already present.
func deltaPayload(family v1.IPFamily) []byte {
	name := func(s string) string { return ipvs.SetName(s, family) }
	if family == v1.IPv6Protocol {
		return []byte(strings.Join([]string{
			"del " + name(ipvs.SetClusterIP) + " fd00:96::1,tcp:80 -exist",
			"del " + name(ipvs.SetClusterIP) + " fd00:96::99,tcp:80 -exist",
			"del " + name(ipvs.SetNodePortTCP) + " 30080 -exist",
			"add " + name(ipvs.SetClusterIP) + " fd00:96::c,udp:5353 -exist",
			"add " + name(ipvs.SetClusterIP) + " fd00:96::a,udp:53 -exist",
			"add " + name(ipvs.SetLoadBalancerSourceCIDR) + " 2001:db8::9,sctp:443,2001:db8:3::/64 -exist",
			"add " + name(ipvs.SetNodePortTCP) + " 30443 -exist",
		}, "\n") + "\n")
	}
	return []byte(strings.Join([]string{
		"del " + name(ipvs.SetClusterIP) + " 10.96.0.1,tcp:443 -exist",
		"del " + name(ipvs.SetClusterIP) + " 10.96.0.99,tcp:443 -exist",
		"del " + name(ipvs.SetHealthCheckNodePort) + " 32000 -exist",
		"add " + name(ipvs.SetClusterIP) + " 10.96.0.12,udp:5353 -exist",
		"add " + name(ipvs.SetClusterIP) + " 10.96.0.10,udp:53 -exist",
		"add " + name(ipvs.SetLoadBalancerSourceCIDR) + " 192.0.2.9,sctp:443,10.0.0.0/8 -exist",
		"add " + name(ipvs.SetNodePortUDP) + " 30054 -exist",
	}, "\n") + "\n")
}

// programEntries lists a set's members with the ipset program in a namespace.
func programEntries(t *testing.T, ns, set string) []string {
	t.Helper()
	var entries []string
	for _, line := range strings.Split(inNetns(t, ns, nil, "ipset", "list", set, "-o", "save"), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "add" && f[1] == set {
			entries = append(entries, f[2])
		}
	}
	return entries
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

// TestNetlinkIPSetsErrors checks the answers the Proxier relies on: a failing line
// stops the restore and is named, as `ipset restore` does; Entries of an absent set
// wraps ErrNoSet; Destroy of an absent set is not an error.
func TestNetlinkIPSetsErrors(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	sets := netlinkSetsIn(t, netns(t, "nlerr"))
	err := sets.Restore(ctx, []byte("create A hash:ip family inet\nadd A 10.0.0.1\nadd B 10.0.0.2\nadd A 10.0.0.3\n"))
	if err == nil || !strings.Contains(err.Error(), `line 3 "add B 10.0.0.2"`) {
		t.Fatalf("restore with a missing set: err = %v, want it to name line 3", err)
	}
	got, err := sets.Entries(ctx, "A")
	if err != nil || !cmp.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("after the failed line: Entries(A) = %v, %v; want [10.0.0.1] (earlier lines applied, later not)", got, err)
	}
	if err := sets.Restore(ctx, []byte("add A 10.0.0.1\n")); err == nil {
		t.Fatalf("adding a present member without -exist: no error")
	}
	if _, err := sets.Entries(ctx, "NOPE"); !errors.Is(err, ipvs.ErrNoSet) {
		t.Fatalf("Entries(NOPE): err = %v, want ErrNoSet", err)
	}
	if err := sets.Destroy(ctx, "NOPE"); err != nil {
		t.Fatalf("Destroy(NOPE): %v", err)
	}
	if err := sets.Destroy(ctx, "A"); err != nil {
		t.Fatalf("Destroy(A): %v", err)
	}
	if _, err := sets.Entries(ctx, "A"); !errors.Is(err, ipvs.ErrNoSet) {
		t.Fatalf("Entries(A) after Destroy: err = %v, want ErrNoSet", err)
	}
}
