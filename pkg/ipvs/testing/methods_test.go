package testing

import (
	"reflect"
	"slices"
)

// methodsOf returns the sorted method names of interface type I.
func methodsOf[I any]() []string {
	typ := reflect.TypeFor[I]()
	names := make([]string, typ.NumMethod())
	for i := range names {
		names[i] = typ.Method(i).Name
	}
	slices.Sort(names)
	return names
}
