package fault

import (
	"errors"
	"strings"
	"testing"
)

func TestInjector(t *testing.T) {
	boom1, boom2 := errors.New("boom 1"), errors.New("boom 2")
	inj := New("Restore", "Save")
	inj.FailNext("Restore", boom1)
	inj.FailNext("Restore", boom2)
	if got := inj.Take("Save"); got != nil {
		t.Errorf("Take(Save) = %v, want nil: failures are per operation", got)
	}
	for i, want := range []error{boom1, boom2, nil} {
		if got := inj.Take("Restore"); got != want {
			t.Errorf("Take(Restore) #%d = %v, want %v", i, got, want)
		}
	}
	if n := inj.Pending("Restore"); n != 0 {
		t.Errorf("Pending = %d after use", n)
	}
}

func TestInjectorUnknownOperation(t *testing.T) {
	inj := New("Restore")
	inj.FailNext("Restor", errors.New("typo"))
	if err := inj.Take("Restore"); err == nil || !strings.Contains(err.Error(), `unknown operation(s) ["Restor"]`) {
		t.Errorf("Take after a misspelt FailNext = %v, want an error naming it", err)
	}
}
