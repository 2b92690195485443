package kubeproxyconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// WatchFile reports on the returned channel, once, when the file at path no longer
// holds loaded: its content changed, or it was removed or replaced by different
// content. kube-proxy exits when its configuration file changes, so that its DaemonSet
// restarts it with the new configuration; Switchyard does the same.
//
// A ConfigMap volume updates a file by swapping a symlink (..data) in the file's
// directory, which an inotify watch on the file alone can miss, so the directory is
// watched too, and every event is checked against the content: a touch or a chmod
// does not count. The watch ends with ctx.
func WatchFile(ctx context.Context, path string, loaded []byte) (<-chan error, error) {
	return watchFile(ctx, path, loaded, func() {})
}

// watchFile is WatchFile; seen is called after each event that left the content
// alone, so that tests can order their changes without sleeping.
func watchFile(ctx context.Context, path string, loaded []byte, seen func()) (<-chan error, error) {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching config file %s: %w", path, err)
	}
	if err := watcher.Add(filepath.Dir(path)); err != nil {
		watcher.Close()
		return nil, fmt.Errorf("watching config file %s: %w", path, err)
	}
	// The file itself too: through a symlink, the directory holding its target is
	// elsewhere, and a write to that target is seen only here.
	if err := watcher.Add(path); err != nil {
		watcher.Close()
		return nil, fmt.Errorf("watching config file %s: %w", path, err)
	}
	changed := make(chan error, 1)
	go func() {
		defer watcher.Close()
		// A change between Load and Add is caught by checking once now.
		if err := checkUnchanged(path, loaded); err != nil {
			changed <- err
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case err, ok := <-watcher.Errors:
				if !ok {
					return
				}
				changed <- fmt.Errorf("watching config file %s: %w", path, err)
				return
			case event, ok := <-watcher.Events:
				if !ok {
					return
				}
				if err := checkUnchanged(path, loaded); err != nil {
					changed <- err
					return
				}
				if event.Has(fsnotify.Remove) || event.Has(fsnotify.Rename) {
					// The file was replaced by the same content: watch the new one.
					_ = watcher.Add(path)
				}
				seen()
			}
		}
	}()
	return changed, nil
}

// checkUnchanged returns an error saying how the file differs from loaded.
func checkUnchanged(path string, loaded []byte) error {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("config file %s was removed", path)
	case err != nil:
		return fmt.Errorf("config file %s cannot be read any more: %w", path, err)
	case !bytes.Equal(data, loaded):
		return fmt.Errorf("config file %s changed", path)
	}
	return nil
}
