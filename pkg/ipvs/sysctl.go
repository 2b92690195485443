package ipvs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ProcSysctl is Sysctl over /proc/sys.
type ProcSysctl struct {
	// Root is the sysctl tree; empty means /proc/sys.
	Root string
}

var _ Sysctl = ProcSysctl{}

func (s ProcSysctl) path(name string) string {
	root := s.Root
	if root == "" {
		root = "/proc/sys"
	}
	return filepath.Join(root, filepath.FromSlash(name))
}

// Get implements Sysctl.
func (s ProcSysctl) Get(name string) (string, error) {
	b, err := os.ReadFile(s.path(name))
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set implements Sysctl.
func (s ProcSysctl) Set(name, value string) error {
	if err := os.WriteFile(s.path(name), []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
