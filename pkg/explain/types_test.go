package explain

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestJSONShape pins the field names scripts read: renaming one is a breaking
// change of `switchyard explain -o json`.
func TestJSONShape(t *testing.T) {
	weight := 1
	e := Explanation{
		Mode:    "iptables",
		Packet:  Packet{Src: netip.MustParseAddr("10.244.1.5"), Dst: netip.MustParseAddrPort("10.96.0.10:53"), Proto: "udp", From: FromPod},
		Service: &Service{Namespace: "kube-system", Name: "kube-dns", Port: "dns", Kind: ClusterIP},
		Steps:   []Step{{Where: "nat/KUBE-SERVICES", What: "matches"}},
		Endpoints: []Endpoint{{Address: netip.MustParseAddrPort("10.244.1.7:53"), Probability: 0.5, Weight: &weight,
			Pod: "kube-system/coredns-1", Node: "node-1", Local: true}},
		Scheduler:        "rr",
		Masquerade:       true,
		MasqueradeReason: "why",
		Affinity:         &Affinity{TimeoutSeconds: 10800},
		Verdict:          Delivered,
		Reason:           "because",
	}
	got, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"mode":"iptables","packet":{"src":"10.244.1.5","dst":"10.96.0.10:53","proto":"udp","from":"pod"},` +
		`"service":{"namespace":"kube-system","name":"kube-dns","port":"dns","kind":"cluster-ip"},` +
		`"steps":[{"where":"nat/KUBE-SERVICES","what":"matches"}],` +
		`"endpoints":[{"address":"10.244.1.7:53","probability":0.5,"weight":1,"pod":"kube-system/coredns-1","node":"node-1","local":true,"masquerade":false}],` +
		`"scheduler":"rr","masquerade":true,"masqueradeReason":"why","affinity":{"timeoutSeconds":10800},"verdict":"delivered","reason":"because"}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	var back Explanation
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, back, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestExitCode(t *testing.T) {
	for verdict, want := range map[Verdict]int{Delivered: 0, NotAService: 0, Dropped: 1, Rejected: 1} {
		if got := (&Explanation{Verdict: verdict}).ExitCode(); got != want {
			t.Errorf("%s: exit %d, want %d", verdict, got, want)
		}
	}
}

func TestParseFrom(t *testing.T) {
	for _, s := range []string{"pod", "node", "outside"} {
		if f, err := ParseFrom(s); err != nil || string(f) != s {
			t.Errorf("ParseFrom(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFrom("host"); err == nil {
		t.Error("ParseFrom(host) accepted")
	}
}

func TestWriteText(t *testing.T) {
	e := Explanation{
		Mode:             "iptables",
		Packet:           Packet{Src: netip.MustParseAddr("10.244.1.5"), Dst: netip.MustParseAddrPort("10.96.0.1:443"), Proto: "tcp", From: FromPod},
		Service:          &Service{Namespace: "default", Name: "kubernetes", Port: "https", Kind: ClusterIP},
		Steps:            []Step{{Where: "nat/KUBE-SERVICES", What: "The destination is the cluster IP of default/kubernetes:https."}},
		Endpoints:        []Endpoint{{Address: netip.MustParseAddrPort("192.168.10.11:6443"), Probability: 1, Node: "node-1", Local: true}},
		MasqueradeReason: "the source is a pod",
		Verdict:          Delivered,
		Reason:           "DNAT to one endpoint",
	}
	var b bytes.Buffer
	if err := e.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Packet:     tcp 10.244.1.5 -> 10.96.0.1:443 from a pod on this node\n",
		"Service:    default/kubernetes:https, reached through its cluster IP\n",
		"   1. nat/KUBE-SERVICES\n      The destination is the cluster IP",
		"192.168.10.11:6443      100.0%  on node node-1 (this node)\n",
		"Masquerade: no: the source is a pod\n",
		"Affinity:   none",
		"Verdict:    delivered: DNAT to one endpoint\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}
