package manifest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	discovery "k8s.io/api/discovery/v1"
	kjson "sigs.k8s.io/json"
)

// sliceTemplate is an EndpointSlice as the endpoint slice controller writes it, with
// every member decodeSliceFast decodes itself or hands to sigs.k8s.io/json.
const sliceTemplate = `{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1",` +
	`"metadata":{"name":"web-abc12","generateName":"web-","namespace":"demo","uid":"0e5e7c6a-1b2c-4d5e-8f90-123456789abc",` +
	`"resourceVersion":"4711","generation":3,"creationTimestamp":"2026-12-01T10:20:30Z",` +
	`"labels":{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"web"},` +
	`"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-12-01T10:20:30Z"},` +
	`"ownerReferences":[{"apiVersion":"v1","kind":"Service","name":"web","uid":"1e5e7c6a-1b2c-4d5e-8f90-123456789abc","controller":true,"blockOwnerDeletion":true}]},` +
	`"addressType":"IPv4",` +
	`"endpoints":[{"addresses":["10.244.1.5"],"conditions":{"ready":true,"serving":true,"terminating":false},` +
	`"hostname":"web-0","targetRef":{"kind":"Pod","namespace":"demo","name":"web-0","uid":"2e5e7c6a-1b2c-4d5e-8f90-123456789abc"},` +
	`"nodeName":"node-a","zone":"zone-a","hints":{"forZones":[{"name":"zone-a"}]}},` +
	`{"addresses":["10.244.2.6","10.244.2.7"],"conditions":{}},{"addresses":[],"conditions":{"ready":false}}],` +
	`"ports":[{"name":"http","protocol":"TCP","port":8080,"appProtocol":"http"},{"name":"","protocol":"UDP","port":-0}]}`

// TestDecodeSliceFastAsStrict checks decodeSliceFast against what it stands in for,
// sigs.k8s.io/json's strict decoding: where it decodes, the object is the same and the
// strict decoding finds no problem; where the strict decoding reports anything (or
// might decode differently), it declines, so that decodeTyped reports as before.
// mutation-checked: accepting a member seen before fails "duplicate member" and
// "duplicate label"; an empty endpoints array decoded as nil fails "white space" and
// "no endpoints"; passing null to sigs.k8s.io/json fails "null targetRef"; taking
// strings without plainString's check fails "unicode name"; parsing ports with
// bitSize 64 fails "port out of range".
func TestDecodeSliceFastAsStrict(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(sliceTemplate, old) {
			t.Fatalf("template lacks %s", old)
		}
		return strings.Replace(sliceTemplate, old, new, 1)
	}
	for _, tc := range []struct {
		name     string
		data     string
		wantFast bool
	}{
		{"controller's shape", sliceTemplate, true},
		{"minimal", `{"addressType":"IPv4","endpoints":null}`, false},
		{"empty", `{}`, true},
		{"white space", " {\n \"metadata\" : { \"name\" : \"a\" } ,\"endpoints\" : [ ] , \"ports\":[ {\"port\" : 1 } ] }\n", true},
		{"no endpoints", `{"endpoints":[],"ports":[]}`, true},
		{"dump item", strings.Split(dumpItems(t), "\n")[0], true},
		{"duplicate member", replace(`"addressType":"IPv4",`, `"addressType":"IPv4","addressType":"IPv6",`), false},
		{"duplicate label", replace(`"kubernetes.io/service-name":"web"}`, `"kubernetes.io/service-name":"web","kubernetes.io/service-name":"x"}`), false},
		{"unknown member", replace(`"addressType":"IPv4",`, `"addressType":"IPv4","bogus":1,`), false},
		{"unknown in targetRef", replace(`"kind":"Pod",`, `"kind":"Pod","bogus":1,`), false},
		{"case of a member", replace(`"addressType"`, `"AddressType"`), false},
		{"null targetRef", replace(`"targetRef":{"kind":"Pod","namespace":"demo","name":"web-0","uid":"2e5e7c6a-1b2c-4d5e-8f90-123456789abc"}`, `"targetRef":null`), false},
		{"null hostname", replace(`"hostname":"web-0"`, `"hostname":null`), false},
		{"null timestamp", replace(`"creationTimestamp":"2026-12-01T10:20:30Z"`, `"creationTimestamp":null`), false},
		{"bad timestamp", replace(`"creationTimestamp":"2026-12-01T10:20:30Z"`, `"creationTimestamp":"yesterday"`), false},
		{"escaped annotation", replace(`"2026-12-01T10:20:30Z"},`, `"a\"b"},`), false},
		{"unicode name", replace(`"name":"web-abc12"`, `"name":"wéb"`), false},
		{"port out of range", replace(`"port":8080`, `"port":80800000000`), false},
		{"fractional port", replace(`"port":8080`, `"port":8080.0`), false},
		{"exponent port", replace(`"port":8080`, `"port":8e3`), false},
		{"string port", replace(`"port":8080`, `"port":"8080"`), false},
		{"generation as a string", replace(`"generation":3`, `"generation":"3"`), false},
		{"condition as a string", replace(`"ready":true`, `"ready":"true"`), false},
		{"address as a number", replace(`"10.244.1.5"`, `10`), false},
		{"not an object", `[]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.data)) {
				t.Fatalf("test input is not valid JSON: %s", tc.data)
			}
			fast, ok := decodeSliceFast([]byte(tc.data))
			if ok != tc.wantFast {
				t.Errorf("decodeSliceFast handled = %v, want %v", ok, tc.wantFast)
			}
			checkSliceFast(t, []byte(tc.data), fast, ok)
		})
	}
}

// checkSliceFast fails the test if decodeSliceFast decoded data (ok) to anything but
// what the strict decoding gives, or where the strict decoding finds a problem.
func checkSliceFast(t *testing.T, data []byte, fast *discovery.EndpointSlice, ok bool) {
	t.Helper()
	if !ok {
		return
	}
	want := &discovery.EndpointSlice{}
	strictErrs, err := kjson.UnmarshalStrict(data, want)
	if err != nil || len(strictErrs) > 0 {
		t.Fatalf("decodeSliceFast decoded what the strict decoding refuses: %v %v", err, strictErrs)
	}
	if diff := cmp.Diff(want, fast); diff != "" {
		t.Errorf("decodeSliceFast differs from the strict decoding (-strict +fast):\n%s", diff)
	}
}

// dumpItems returns writeDump's EndpointSlices, one a line.
func dumpItems(t *testing.T) string {
	var dump bytes.Buffer
	writeDump(&dump, 3, 4)
	var lines []string
	for _, line := range strings.Split(dump.String(), "\n") {
		if strings.Contains(line, `"kind":"EndpointSlice"`) {
			lines = append(lines, strings.TrimSuffix(line, ","))
		}
	}
	if len(lines) == 0 {
		t.Fatal("writeDump wrote no EndpointSlice")
	}
	return strings.Join(lines, "\n")
}

// FuzzDecodeSliceFast checks decodeSliceFast against the strict decoding on
// arbitrary JSON, seeded with the controller's shape and its variants.
func FuzzDecodeSliceFast(f *testing.F) {
	f.Add([]byte(sliceTemplate))
	f.Add([]byte(`{"endpoints":[{"addresses":["a"],"conditions":{"ready":true}}],"ports":[{"port":1}]}`))
	f.Add([]byte(`{"metadata":{"labels":{},"annotations":{"a":"b"}},"endpoints":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		fast, ok := decodeSliceFast(data)
		checkSliceFast(t, data, fast, ok)
	})
}
