package vm

// Tests of the harness's pure parts; they need neither root nor QEMU.

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func TestParseConsole(t *testing.T) {
	const nonce = "abc123"
	tests := []struct {
		name       string
		console    string
		wantOK     bool
		wantExit   int
		wantOutput string
	}{
		{
			name:       "output with final newline",
			console:    "boot\nSWITCHYARD-VM-BEGIN abc123 uptime=2.00\nhello\n\nSWITCHYARD-VM-END abc123 exit=0 uptime=2.50\n[ 2.6] reboot\n",
			wantOK:     true,
			wantOutput: "hello\n",
		},
		{
			name:       "output without final newline",
			console:    "SWITCHYARD-VM-BEGIN abc123 uptime=2.00\nno newline\nSWITCHYARD-VM-END abc123 exit=7 uptime=2.10\n",
			wantOK:     true,
			wantExit:   7,
			wantOutput: "no newline",
		},
		{
			name:       "a forged marker with another nonce is output",
			console:    "SWITCHYARD-VM-BEGIN abc123 uptime=1\nSWITCHYARD-VM-END zzz exit=0 uptime=1\n\nSWITCHYARD-VM-END abc123 exit=3 uptime=1\n",
			wantOK:     true,
			wantExit:   3,
			wantOutput: "SWITCHYARD-VM-END zzz exit=0 uptime=1\n",
		},
		{
			name:    "no end marker",
			console: "SWITCHYARD-VM-BEGIN abc123 uptime=1\nKernel panic\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, output, ok := parseConsole(tc.console, nonce)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if status.exitCode != tc.wantExit || output != tc.wantOutput {
				t.Errorf("got exit %d output %q, want exit %d output %q", status.exitCode, output, tc.wantExit, tc.wantOutput)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	out, err := exec.Command("sh", "-c", "printf '%s|' "+shellQuoteAll([]string{"a b", "it's", `$HOME "x"`, ""})).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := `a b|it's|$HOME "x"||`; string(out) != want {
		t.Errorf("sh saw %q, want %q", out, want)
	}
}

// TestCPIO checks the archive with cpio(1), when the host has it: names, symlinks through
// directory symlinks, and device nodes.
func TestCPIO(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed")
	}
	tr := newTree()
	tr.addSymlink("/bin", "usr/bin")
	tr.addFile("/bin/busybox", []byte("odd-length"), 0o755)
	tr.addCharDev("/dev/console", 5, 1)
	var buf bytes.Buffer
	if err := tr.writeCPIO(&buf); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	if got, want := strings.Fields(string(out)), []string{"bin", "dev", "dev/console", "usr", "usr/bin", "usr/bin/busybox"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("archive holds %v, want %v", got, want)
	}
}

// TestModuleOrder checks the load order against the real kernel package, when present: the
// softdep from libcrc32c to crc32c must put crc32c_generic first. It needs the kernel
// package but neither root nor QEMU.
func TestModuleOrder(t *testing.T) {
	k := requireKernel(t)
	modules, err := k.ResolveModules([]string{"ip_vs_rr", "ip_set_hash_*"})
	if err != nil {
		t.Fatal(err)
	}
	position := map[string]int{}
	for i, m := range modules {
		position[m.Name] = i
	}
	for _, before := range [][2]string{
		{"crc32c_generic", "libcrc32c"}, {"libcrc32c", "nf_conntrack"}, {"nf_defrag_ipv4", "nf_conntrack"},
		{"nf_conntrack", "ip_vs"}, {"ip_vs", "ip_vs_rr"}, {"ip_set", "ip_set_hash_ipportnet"},
	} {
		a, okA := position[before[0]]
		b, okB := position[before[1]]
		if !okA || !okB || a > b {
			t.Errorf("%s (at %d, present %v) must load before %s (at %d, present %v)", before[0], a, okA, before[1], b, okB)
		}
	}
	dep := string(modulesDep(modules))
	if !strings.Contains(dep, "kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko") {
		t.Errorf("modules.dep lacks the ip_vs_rr line:\n%s", dep)
	}
}
