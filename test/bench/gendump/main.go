// Command gendump writes a deterministic cluster dump for the dry-run benchmarks: one
// `kind: List` in JSON, as `kubectl get services,endpointslices -A -o json` prints it,
// holding N Services (ClusterIP, one TCP port) and their EndpointSlices with E ready
// endpoints each, built by the same functions the testbed loader uses, plus one Node.
// It is compact, one item per line (10k x 10 is about 11 MB).
//
//	go run ./test/bench/gendump -scale 10000x10 -o dump.json
//
// The same scale always gives the same bytes: times and UIDs are derived from the
// object's index, not the clock.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/test/bench"
)

// NodeName is the Node in the dump, which dry-run renders for.
const NodeName = "bench-node"

// epoch is the creation time of every object, so the output does not depend on the clock.
var epoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func main() {
	scaleText := flag.String("scale", "10000x10", "SERVICESxENDPOINTS")
	out := flag.String("o", "-", "output file, - for stdout")
	flag.Parse()
	if err := run(*scaleText, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gendump:", err)
		os.Exit(1)
	}
}

func run(scaleText, out string) error {
	scale, err := bench.ParseScale(scaleText)
	if err != nil {
		return err
	}
	w := io.Writer(os.Stdout)
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	buf := bufio.NewWriterSize(w, 1<<20)
	if err := write(buf, scale); err != nil {
		return err
	}
	return buf.Flush()
}

// write prints the List item by item, so that the generator's memory does not grow
// with the scale.
func write(w io.Writer, scale bench.Scale) error {
	if _, err := io.WriteString(w, `{"apiVersion":"v1","items":[`+"\n"); err != nil {
		return err
	}
	first := true
	item := func(obj any) error {
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if !first {
			if _, err := io.WriteString(w, ",\n"); err != nil {
				return err
			}
		}
		first = false
		_, err = w.Write(data)
		return err
	}
	loader := &bench.Loader{}
	for i := range scale.Services {
		svc := loader.Service(i)
		svc.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
		stamp(&svc.ObjectMeta, "svc", i)
		svc.Spec.Type = v1.ServiceTypeClusterIP
		svc.Spec.ClusterIP = ClusterIP(i)
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		svc.Spec.SessionAffinity = v1.ServiceAffinityNone
		if err := item(svc); err != nil {
			return err
		}
	}
	for i := range scale.Services {
		for j, slice := range bench.Slices(i, bench.Addresses(i, scale.Endpoints), epoch) {
			slice.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
			stamp(&slice.ObjectMeta, "eps", i*16+j)
			if err := item(slice); err != nil {
				return err
			}
		}
	}
	node := &v1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: NodeName},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: "192.168.0.10"},
			{Type: v1.NodeHostName, Address: NodeName},
		}},
		Spec: v1.NodeSpec{PodCIDR: "10.244.0.0/24", PodCIDRs: []string{"10.244.0.0/24"}},
	}
	stamp(&node.ObjectMeta, "node", 0)
	if err := item(node); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n"+`],"kind":"List","metadata":{"resourceVersion":""}}`+"\n")
	return err
}

// stamp fills the metadata the API server adds, as a real dump has it.
func stamp(meta *metav1.ObjectMeta, kind string, i int) {
	meta.UID = types.UID(fmt.Sprintf("%08x-0000-4000-8000-%012x", len(kind), i))
	meta.ResourceVersion = fmt.Sprint(1000 + i)
	meta.CreationTimestamp = metav1.NewTime(epoch)
}

// ClusterIP is the ClusterIP of Service i, in 10.96.0.0/12.
func ClusterIP(i int) string {
	n := uint32(i + 10)
	return netip.AddrFrom4([4]byte{10, 96 + byte(n>>16), byte(n >> 8), byte(n)}).String()
}
