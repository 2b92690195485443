package nftkernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nftables"
)

// TestNetlinkWriterWritesWhatNFTWrites runs two Proxiers side by side through the same
// snapshots, per family: one writes every transaction through the nft binary, the
// other is the daemon's Kernel, which sends the partial transactions it can compile
// as netlink batches of its own (pkg/nftables/compile.go). After every step both
// namespaces must list the same table, and the same expressions, registers and
// anonymous-set elements (`nft --debug=netlink list table`, anonymous set numbers
// aside); and each step must have been written the way it is meant to be, so that the
// comparison covers the compiled forms: numgen maps, single DNATs, masquerade marks,
// fib and source-prefix short-circuits, gotos, and element adds and deletes with
// verdicts and comments.
//
// mutation-checked (kernel 6.18, IPv4 subtest), each fails this test: leaving the
// anonymous map's user data out; reading the map form's port from register 10 instead
// of 9; dropping the padding of a concatenated key; a comment without its NUL; fib's
// "local" compared with RTN_UNICAST; a goto element written as jump. Giving the map
// form's dnat the "specified" flag nft leaves out does not: the kernel sets that flag
// itself whenever a port register is given, so the two are the same rule.
func TestNetlinkWriterWritesWhatNFTWrites(t *testing.T) {
	requireRoot(t)
	for _, f := range families {
		t.Run(string(f.family), func(t *testing.T) {
			short := strings.ToLower(string(f.family[:4]))
			nsNL := netnsNFT(t, short+"-w-nl")
			nsFile, err := os.Open(filepath.Join("/run/netns", nsNL))
			if err != nil {
				t.Fatal(err)
			}
			defer nsFile.Close()
			viaNetlink, err := nftables.OpenIn(f.family, nsFile)
			if err != nil {
				t.Fatal(err)
			}
			nsNFT := netnsNFT(t, short+"-w-nft")
			viaNFT, err := knftables.New(f.config(false).NFTFamily(), nftables.TableName)
			if err != nil {
				t.Fatal(err)
			}
			clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			now := func() time.Time { return clock }
			cfg := f.config(true)
			pNFT, err := nftables.NewProxier(cfg, viaNFT, 0, now)
			if err != nil {
				t.Fatal(err)
			}
			pNL, err := nftables.NewProxier(cfg, viaNetlink, 0, now)
			if err != nil {
				t.Fatal(err)
			}
			w := &world{t: t, f: f, tracker: endpoints.NewTracker("node1")}
			w.populate()
			ctx := context.Background()

			step := func(what, wantWriter string) {
				t.Helper()
				snap := w.tracker.Snapshot()
				a, err := pNFT.SyncDetailed(ctx, snap)
				if err != nil {
					t.Fatalf("%s, through nft: %v\n%s", what, err, a.Transaction)
				}
				b, err := pNL.SyncDetailed(ctx, snap)
				if err != nil {
					t.Fatalf("%s, daemon's writer: %v\n%s", what, err, b.Transaction)
				}
				if a.Transaction != b.Transaction {
					t.Fatalf("%s: the two Proxiers rendered different transactions:\n%s", what, cmp.Diff(a.Transaction, b.Transaction))
				}
				if b.Writer != wantWriter {
					t.Errorf("%s: written by %q, want %q:\n%s", what, b.Writer, wantWriter, b.Transaction)
				}
				family := string(cfg.NFTFamily())
				for _, args := range [][]string{
					{"list", "table", family, nftables.TableName},
					{"--debug=netlink", "list", "table", family, nftables.TableName},
				} {
					want, got := debugListing(nftIn(t, nsNFT, args...)), debugListing(nftIn(t, nsNL, args...))
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("%s: nft %s differs (-nft +netlink) after\n%s\n%s", what, strings.Join(args, " "), b.Transaction, diff)
					}
				}
			}

			step("the first full sync", nftables.WriterNFT)
			w.slice("cluster", v1.ProtocolTCP, 1, -2, 3, 16)
			step("one endpoint added", nftables.WriterNetlink)
			w.slice("cluster", v1.ProtocolTCP, 1)
			step("down to one endpoint", nftables.WriterNetlink)
			w.slice("cluster", v1.ProtocolTCP)
			step("no endpoint left", nftables.WriterNetlink)
			w.slice("cluster", v1.ProtocolTCP, 1, -2)
			step("endpoints back", nftables.WriterNetlink)
			w.service("new-nodeport", 20, func(s *v1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeNodePort, 30020
				s.Spec.ExternalIPs = []string{f.extIP}
			})
			w.slice("new-nodeport", v1.ProtocolTCP, 21, -22)
			step("a new node port service", nftables.WriterNetlink)
			w.service("new-nodeport", 20, func(s *v1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeNodePort, 30020
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			})
			step("external traffic policy Local", nftables.WriterNetlink)
			w.service("new-udp", 21, func(s *v1.Service) { s.Spec.Ports[0].Protocol = v1.ProtocolUDP })
			w.slice("new-udp", v1.ProtocolUDP, 23, 24, 25)
			step("a new UDP service", nftables.WriterNetlink)
			w.tracker.OnServiceDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "new-nodeport"}})
			step("a service deleted", nftables.WriterNetlink)
			clock = clock.Add(nftables.StaleChainDelay)
			w.slice("single", v1.ProtocolTCP, 4, 26)
			step("a second later: stale chains deleted, one more endpoint", nftables.WriterNetlink)
			// Affinity sets and source-range firewalls are left to nft.
			w.slice("affinity", v1.ProtocolTCP, 13, 14, 27)
			step("an affinity service's endpoint", nftables.WriterNFT)
			w.service("fw", 22, func(s *v1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeLoadBalancer, 30022
				s.Spec.LoadBalancerSourceRanges = []string{f.sourceRange}
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: f.lbIP}}
			})
			w.slice("fw", v1.ProtocolTCP, 28)
			step("a load balancer with source ranges", nftables.WriterNFT)
			w.service("internal-local", 10, func(s *v1.Service) {
				s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
				s.Spec.Ports[0].Port = 81
			})
			step("a port changed", nftables.WriterNetlink)
		})
	}
}

// debugListing prepares a listing for comparison: anonymous sets renumbered, and the
// element lines of --debug=netlink sorted within each set, which prints them in the
// order of the set's hash (seeded per namespace).
//
// The netlink writer's rules also carry a tag in their user data, which nft does not
// list and the nft writer does not write: it is taken out of the raw user data that
// --debug=netlink prints (the line left blank, as for a rule without user data, when
// nothing else is left).
func debugListing(listing string) string {
	var lines []string
	for _, line := range strings.Split(anonymousSetsNumbered(listing), "\n") {
		if i := strings.Index(line, "userdata = { "); i >= 0 && strings.HasSuffix(line, " }") {
			rest := withoutTag(unescape(line[i+len("userdata = { ") : len(line)-2]))
			line = line[:i] + fmt.Sprintf("userdata = %q", rest)
			if len(rest) == 0 {
				line = "" // where nft prints a rule without user data
			}
		}
		lines = append(lines, line)
	}
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && strings.HasPrefix(strings.TrimLeft(lines[j], "\t"), "element ") {
			j++
		}
		slices.Sort(lines[i:j])
		i = j + 1
	}
	return strings.Join(lines, "\n")
}

// unescape reads nft's printing of raw bytes: printable ones as they are, the others
// as \xNN.
func unescape(s string) []byte {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if b, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				out = append(out, byte(b))
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// withoutTag removes the netlink writer's tag entry (type 0x53, 8 bytes) from a rule's
// user data (type-length-value entries).
func withoutTag(udata []byte) []byte {
	var out []byte
	for len(udata) >= 2 && len(udata) >= 2+int(udata[1]) {
		entry := udata[:2+int(udata[1])]
		if !(entry[0] == 0x53 && entry[1] == 8) {
			out = append(out, entry...)
		}
		udata = udata[len(entry):]
	}
	return append(out, udata...)
}

// anonymousSetNumber matches the number the kernel gives an anonymous set.
var anonymousSetNumber = regexp.MustCompile(`__(map|set)[0-9]+`)

// anonymousSetsNumbered renumbers a listing's anonymous sets in order of appearance:
// the kernel numbers them by the free slots it finds, which depend on history, not on
// what the sets hold.
func anonymousSetsNumbered(listing string) string {
	seen := map[string]string{}
	return anonymousSetNumber.ReplaceAllStringFunc(listing, func(s string) string {
		if n, ok := seen[s]; ok {
			return n
		}
		n := fmt.Sprintf("__anon%d", len(seen))
		seen[s] = n
		return n
	})
}

// TestNetlinkBatches sends batches through the daemon's Kernel directly: a batch with a
// refused message in its middle is refused whole (the element before it is not
// added), with the kernel's error; a batch of 3,000 chains (about 2.6 MB, past the
// socket's default send buffer) is taken whole; and a whole-table dump reads back
// each compiled rule's tag, equal to RuleTag of its text.
//
// mutation-checked: asking for the ack of the first message instead of the last makes
// the refused batch look applied; not raising the send buffer fails the big batch
// ("message too long").
func TestNetlinkBatches(t *testing.T) {
	requireRoot(t)
	f := families[0]
	ns := netnsNFT(t, "batch")
	cfg := f.config(false)
	p := newKernelProxier(t, ns, f, cfg)
	w := &world{t: t, f: f, tracker: endpoints.NewTracker("node1")}
	w.populate()
	ctx := context.Background()
	if _, err := p.SyncDetailed(ctx, w.tracker.Snapshot()); err != nil {
		t.Fatal(err)
	}
	nsFile, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nsFile.Close()
	k, err := nftables.OpenIn(f.family, nsFile)
	if err != nil {
		t.Fatal(err)
	}

	tx := k.NewTransaction()
	tx.Add(&knftables.Element{Set: "cluster-ips", Key: []string{"172.30.9.9"}})
	tx.Flush(&knftables.Chain{Name: "no-such-chain"})
	tx.Add(&knftables.Element{Set: "cluster-ips", Key: []string{"172.30.9.10"}})
	err = k.Run(ctx, tx)
	if w := k.(nftables.WriterReporter).LastWriter(); w != nftables.WriterNetlink {
		t.Fatalf("written by %s", w)
	}
	if !nftables.IsNotFound(err) {
		t.Errorf("a batch flushing a missing chain: %v, want not found", err)
	}
	if listed := nftIn(t, ns, "list", "set", "ip", nftables.TableName, "cluster-ips"); strings.Contains(listed, "172.30.9.") {
		t.Errorf("the refused batch left elements:\n%s", listed)
	}

	tx = k.NewTransaction()
	const chains = 3000
	var rule strings.Builder
	rule.WriteString("meta l4proto tcp dnat ip addr . port to numgen random mod 10 map { ")
	for i := range 10 {
		if i > 0 {
			rule.WriteString(" , ")
		}
		fmt.Fprintf(&rule, "%d : 10.200.%d.%d . 8080", i, i, i+1)
	}
	rule.WriteString(" }")
	for i := range chains {
		name := fmt.Sprintf("zz-%04d", i)
		tx.Add(&knftables.Chain{Name: name})
		tx.Add(&knftables.Rule{Chain: name, Rule: rule.String()})
	}
	if err := k.Run(ctx, tx); err != nil {
		t.Fatalf("a batch of %d chains: %v", chains, err)
	}
	if w := k.(nftables.WriterReporter).LastWriter(); w != nftables.WriterNetlink {
		t.Fatalf("written by %s", w)
	}
	dump, err := k.(nftables.RuleDumper).DumpRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range chains {
		name := fmt.Sprintf("zz-%04d", i)
		rules := dump[name]
		if len(rules) != 1 || rules[0].Tag != nftables.RuleTag(name, rule.String(), nil) {
			t.Fatalf("chain %s: rules %+v, want one tagged with %x", name, rules, nftables.RuleTag(name, rule.String(), nil))
		}
	}
	if got := strings.Count(nftIn(t, ns, "list", "chains", "ip"), "chain zz-"); got != chains {
		t.Errorf("nft lists %d zz- chains, want %d", got, chains)
	}
}
