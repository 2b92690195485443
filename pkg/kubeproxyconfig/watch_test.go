package kubeproxyconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWatchFile checks that a changed, replaced or removed file is reported, and that
// events that leave the content alone are not: each case first makes such a harmless
// change and then the real one, and the report must name the real one.
// Mutation-checked: reporting every event without comparing the content fails
// "removed after touch" (it reports "changed"); watching the file only, not its
// directory, makes "configmap symlink swap" hang until the test times out.
func TestWatchFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the path to watch, a change that leaves the content alone
		// (or nil) and one that does not.
		setup func(t *testing.T, dir string) (path string, harmless, change func() error)
		want  string
	}{
		{
			name: "content changed",
			setup: func(t *testing.T, dir string) (string, func() error, func() error) {
				path := filepath.Join(dir, "config.conf")
				mustWrite(t, path, "one")
				return path, func() error { return os.WriteFile(path, []byte("one"), 0o644) },
					func() error { return os.WriteFile(path, []byte("two"), 0o644) }
			},
			want: "changed",
		},
		{
			name: "removed after touch",
			setup: func(t *testing.T, dir string) (string, func() error, func() error) {
				path := filepath.Join(dir, "config.conf")
				mustWrite(t, path, "one")
				return path, func() error {
					now := time.Now()
					return os.Chtimes(path, now, now)
				}, func() error { return os.Remove(path) }
			},
			want: "was removed",
		},
		{
			// A ConfigMap volume: config.conf -> ..data/config.conf, ..data ->
			// ..2026_1; an update writes ..2026_2 and renames a new ..data link over
			// the old one.
			name: "configmap symlink swap",
			setup: func(t *testing.T, dir string) (string, func() error, func() error) {
				mustWrite(t, filepath.Join(dir, "..2026_1", "config.conf"), "one")
				mustWrite(t, filepath.Join(dir, "..2026_2", "config.conf"), "two")
				mustSymlink(t, "..2026_1", filepath.Join(dir, "..data"))
				mustSymlink(t, filepath.Join("..data", "config.conf"), filepath.Join(dir, "config.conf"))
				return filepath.Join(dir, "config.conf"), nil, func() error {
					tmp := filepath.Join(dir, "..data_tmp")
					if err := os.Symlink("..2026_2", tmp); err != nil {
						return err
					}
					return os.Rename(tmp, filepath.Join(dir, "..data"))
				}
			},
			want: "changed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, harmless, change := tc.setup(t, t.TempDir())
			loaded, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			seen := make(chan struct{}, 100)
			changed, err := watchFile(t.Context(), path, loaded, func() { seen <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			var got error
			if harmless != nil {
				if err := harmless(); err != nil {
					t.Fatal(err)
				}
				// Wait until the watcher has handled the harmless change's first
				// event, or reported it.
				select {
				case <-seen:
				case got = <-changed:
				}
			}
			if got == nil {
				if err := change(); err != nil {
					t.Fatal(err)
				}
				got = <-changed
			}
			if got == nil || !strings.Contains(got.Error(), path+" "+tc.want) {
				t.Errorf("reported %v, want %q", got, path+" "+tc.want)
			}
		})
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
