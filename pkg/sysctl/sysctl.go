// Package sysctl reads and writes kernel parameters given as files: the /proc/sys
// tree ("net/ipv4/conf/all/route_localnet") and module parameters under
// /sys/module/<module>/parameters. Errors are wrapped with the parameter's name and
// keep the underlying errno, so callers can tell a read-only file (EROFS, EACCES,
// EPERM) from a missing one (ENOENT).
package sysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Interface reads and writes named integer kernel parameters.
type Interface interface {
	// Get returns a parameter's value.
	Get(name string) (int, error)
	// Set writes a parameter.
	Set(name string, value int) error
}

// Ensure sets a parameter to value unless it already holds it, and reports whether it
// wrote: kube-proxy writes a sysctl only when it differs, so a read-only parameter that
// already has the wanted value is no error.
func Ensure(s Interface, name string, value int) (changed bool, err error) {
	if cur, err := s.Get(name); err == nil && cur == value {
		return false, nil
	}
	if err := s.Set(name, value); err != nil {
		return false, err
	}
	return true, nil
}

// Files is Interface over a directory of parameter files.
type Files struct {
	// Root is the directory; names are slash-separated paths below it.
	Root string
}

// Proc is the sysctl tree of the calling process's network namespace.
var Proc = Files{Root: "/proc/sys"}

// ConntrackModule holds the nf_conntrack module's parameters (hashsize).
var ConntrackModule = Files{Root: "/sys/module/nf_conntrack/parameters"}

var _ Interface = Files{}

func (f Files) path(name string) string {
	return filepath.Join(f.Root, filepath.FromSlash(name))
}

// Get implements Interface.
func (f Files) Get(name string) (int, error) {
	b, err := os.ReadFile(f.path(name))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", name, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", name, err)
	}
	return v, nil
}

// Set implements Interface.
func (f Files) Set(name string, value int) error {
	if err := os.WriteFile(f.path(name), []byte(strconv.Itoa(value)), 0o640); err != nil {
		return fmt.Errorf("writing %s=%d: %w", name, value, err)
	}
	return nil
}

// IsReadOnly reports whether err says a parameter cannot be written: a read-only
// /sys (a container), or a sysctl that a non-initial network namespace may only read.
func IsReadOnly(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission)
}
