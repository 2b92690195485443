package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// UnprivilegedUID is the user (and group) Switchyard runs as with
// SwitchyardOptions.Capabilities: nobody, which owns no file on the host.
const UnprivilegedUID = 65534

// unprivilegedKubeconfig copies kubeconfig to a file UnprivilegedUID can read: the
// cluster directory is root's alone (0700), since it holds every identity's token.
// The copy is removed at the end of the test.
func (c *Cluster) unprivilegedKubeconfig(t testing.TB, kubeconfig string) (string, error) {
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", Prefix+c.ID+"-unprivileged-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, filepath.Base(kubeconfig))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, os.Chown(path, UnprivilegedUID, UnprivilegedUID)
}

// unprivilegedArgv runs argv as UnprivilegedUID with no supplementary groups and only
// caps: setpriv (util-linux) sets them as inheritable and ambient, so they survive
// the exec of switchyard and of the iptables-restore it runs, and as the whole
// bounding set, so nothing can gain more. `ip netns exec` runs first, as root, since
// entering a namespace needs CAP_SYS_ADMIN. The parent-death signal, which a
// credential change clears, is set again.
func unprivilegedArgv(caps []string, argv []string) []string {
	list := "-all"
	for _, capability := range caps {
		list += ",+" + strings.ToLower(capability)
	}
	return append([]string{"setpriv",
		fmt.Sprintf("--reuid=%d", UnprivilegedUID), fmt.Sprintf("--regid=%d", UnprivilegedUID), "--clear-groups",
		"--inh-caps=" + list, "--ambient-caps=" + list, "--bounding-set=" + list,
		"--pdeathsig=SIGKILL", "--"}, argv...)
}
