package kubeproxyconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const header = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"

// TestDecode covers strict decoding, the lenient fallback with one warning per
// unknown or duplicate field, and one-line errors naming what is wrong.
// Mutation-checked: returning the strict error instead of falling back to lenient
// decoding fails "unknown field" and "duplicate field".
func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name         string
		data         string
		wantMode     string
		wantWarnings []string
		wantErr      string
	}{
		{name: "minimal", data: header + "mode: ipvs\n", wantMode: "ipvs"},
		{name: "json", data: `{"apiVersion":"kubeproxy.config.k8s.io/v1alpha1","kind":"KubeProxyConfiguration","mode":"ipvs"}`, wantMode: "ipvs"},
		{
			name: "unknown field", data: header + "mode: ipvs\nfoo: 1\niptables:\n  bar: true\n", wantMode: "ipvs",
			wantWarnings: []string{`unknown field "foo"`, `unknown field "iptables.bar"`},
		},
		{
			name: "duplicate field", data: header + "mode: ipvs\nmode: iptables\n", wantMode: "iptables",
			wantWarnings: []string{`key "mode" already set in map`},
		},
		{name: "wrong kind", data: "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n", wantErr: "apiVersion kubeproxy.config.k8s.io/v1alpha1, kind KubeletConfiguration: want apiVersion kubeproxy.config.k8s.io/v1alpha1 and kind KubeProxyConfiguration"},
		{name: "wrong version", data: "apiVersion: kubeproxy.config.k8s.io/v1beta9\nkind: KubeProxyConfiguration\n", wantErr: "apiVersion kubeproxy.config.k8s.io/v1beta9, kind KubeProxyConfiguration: want"},
		{name: "no kind", data: "mode: ipvs\n", wantErr: `apiVersion "", kind "": want`},
		{name: "bad duration", data: header + "configSyncPeriod: 5x\n", wantErr: `field configSyncPeriod: want a duration such as "30s": time: unknown unit "x" in duration "5x"`},
		{name: "duration without unit", data: header + "iptables:\n  syncPeriod: 30\n", wantErr: `field iptables.syncPeriod: want a duration such as "30s": cannot use a JSON number as string`},
		{name: "bad nested duration", data: header + "conntrack:\n  udpTimeout: soon\n", wantErr: `field conntrack.udpTimeout: want a duration such as "30s": time: invalid duration "soon"`},
		{name: "wrong type", data: header + "conntrack: [1]\n", wantErr: "field conntrack: cannot use a JSON array as v1alpha1.KubeProxyConntrackConfiguration"},
		{name: "wrong scalar type", data: header + "iptables:\n  masqueradeBit: fourteen\n", wantErr: "field iptables.masqueradeBit: cannot use a JSON string as int32"},
		{name: "empty", data: "\n  \n", wantErr: "is empty, want a KubeProxyConfiguration"},
		{name: "not YAML", data: "\t{{", wantErr: "not valid YAML or JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, warnings, err := Decode([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode: error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("Decode: error spans several lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if string(cfg.Mode) != tc.wantMode {
				t.Errorf("mode %q, want %q", cfg.Mode, tc.wantMode)
			}
			if len(warnings) != len(tc.wantWarnings) {
				t.Fatalf("warnings %q, want %d containing %q", warnings, len(tc.wantWarnings), tc.wantWarnings)
			}
			for i, want := range tc.wantWarnings {
				if !strings.Contains(warnings[i], want) {
					t.Errorf("warning %d: %q, want it to contain %q", i, warnings[i], want)
				}
			}
		})
	}
}

// TestLoad checks the errors that name the file: a directory, a missing file.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "config.conf")
	if err := os.WriteFile(good, []byte(header+"foo: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, wantErr, wantWarning string
	}{
		{name: "file", path: good, wantWarning: "config file " + good + `: unknown field "foo"`},
		{name: "directory", path: dir, wantErr: "config file " + dir + ": is a directory, want a KubeProxyConfiguration file"},
		{name: "missing", path: filepath.Join(dir, "nope"), wantErr: "config file " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, warnings, err := Load(tc.path)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Load: error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 1 || !strings.HasPrefix(warnings[0], tc.wantWarning) {
				t.Errorf("warnings %q, want one starting with %q", warnings, tc.wantWarning)
			}
		})
	}
}

// TestEncodeRoundTrip checks that what Encode writes decodes strictly to the same
// configuration.
func TestEncodeRoundTrip(t *testing.T) {
	in, _, err := Decode([]byte(header + "mode: ipvs\nclusterCIDR: 10.0.0.0/8\nipvs:\n  scheduler: lc\n"))
	if err != nil {
		t.Fatal(err)
	}
	SetDefaults(in)
	canonicalize(in)
	var buf bytes.Buffer
	if err := Encode(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, warnings, err := Decode(buf.Bytes())
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Decode(Encode()): %v, warnings %q\n%s", err, warnings, buf.String())
	}
	// An empty featureGates map is omitted from the file.
	if diff := cmp.Diff(in, out, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
}
