package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAddServicePayload(t *testing.T) {
	sep := EndpointChain(3, "10.244.0.7")
	saved := strings.Join([]string{
		"*nat",
		"-A KUBE-SERVICES -d 10.96.0.3/32 -p tcp -m comment --comment \"bench/svc-00003:http cluster IP\" -m tcp --dport 80 -j " + ServiceChain(3),
		"-A KUBE-SERVICES -d 10.96.0.4/32 -p tcp -m tcp --dport 80 -j " + ServiceChain(4),
		"-A " + ServiceChain(3) + " -m comment --comment \"bench/svc-00003:http -> 10.244.0.7:8080\" -j " + sep,
		"-A " + sep + " -p tcp -m tcp -j DNAT --to-destination 10.244.0.7:8080",
		"-A " + ServiceChain(4) + " -j KUBE-SEP-OTHER",
		"COMMIT",
	}, "\n") + "\n"
	got, err := AddServicePayload(saved, 3, 99, "10.96.255.250")
	if err != nil {
		t.Fatal(err)
	}
	newSEP := EndpointChain(99, "10.247.0.1")
	want := strings.Join([]string{
		"*nat",
		":" + newSEP + " - [0:0]",
		":" + ServiceChain(99) + " - [0:0]",
		"-A " + ServiceChain(99) + " -m comment --comment \"bench/svc-00003:http -> 10.244.0.7:8080\" -j " + newSEP,
		"-A " + newSEP + " -p tcp -m tcp -j DNAT --to-destination 10.244.0.7:8080",
		"-I KUBE-SERVICES 1 -d 10.96.255.250/32 -p tcp -m comment --comment \"bench/svc-00003:http cluster IP\" -m tcp --dport 80 -j " + ServiceChain(99),
		"COMMIT",
	}, "\n") + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if _, err := AddServicePayload(saved, 5, 99, "10.96.255.250"); err == nil {
		t.Error("a Service missing from the table gave no error")
	}
}

func TestSEPSeen(t *testing.T) {
	clock := time.Unix(100, 0)
	s := SEPSeen{Now: func() time.Time { return clock }}
	s.Line("add rule ip nat KUBE-SVC-A meta random & 2147483647 < 1073741824 counter packets 0 bytes 0 jump KUBE-SEP-B")
	clock = clock.Add(time.Second)
	s.Line("add rule ip nat KUBE-SEP-B meta l4proto tcp counter packets 0 bytes 0 dnat to 10.0.0.1:80")
	s.Line("delete rule ip nat KUBE-SVC-A handle 4 # KUBE-SEP-C")
	if got, ok := s.First("KUBE-SEP-B"); !ok || !got.Equal(time.Unix(100, 0)) {
		t.Errorf("KUBE-SEP-B first seen at %v, %t; want the first line's time", got, ok)
	}
	if _, ok := s.First("KUBE-SEP-C"); ok {
		t.Error("a delete counted as the chain appearing")
	}
}
