package ipvs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ExecIPSets is IPSets over the ipset program.
type ExecIPSets struct {
	// Path is the ipset binary; empty means "ipset" on $PATH.
	Path string
}

var _ IPSets = ExecIPSets{}

func (e ExecIPSets) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	path := e.Path
	if path == "" {
		path = "ipset"
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ipset %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Restore implements IPSets.
func (e ExecIPSets) Restore(ctx context.Context, payload []byte) error {
	_, err := e.run(ctx, payload, "restore")
	return err
}

// Entries implements IPSets.
func (e ExecIPSets) Entries(ctx context.Context, set string) ([]string, error) {
	out, err := e.run(ctx, nil, "list", set, "-o", "save")
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil, fmt.Errorf("ipset %s: %w", set, ErrNoSet)
		}
		return nil, err
	}
	var entries []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[0] == "add" && fields[1] == set {
			entries = append(entries, fields[2])
		}
	}
	return entries, nil
}

// Destroy implements IPSets.
func (e ExecIPSets) Destroy(ctx context.Context, set string) error {
	_, err := e.run(ctx, nil, "destroy", set)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return nil
	}
	return err
}

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
