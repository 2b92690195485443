// Package testing holds strict in-memory fakes of pkg/ipvs's kernel interfaces: IPVS,
// links and addresses, ipsets and sysctls. They behave like the kernel: they reject
// duplicates, references to missing objects and malformed input, so a reconciler bug
// shows up as an error in a unit test instead of on a node. Each fake is safe for
// concurrent use and counts the operations it was asked to do, so tests can assert that
// a change cost what it should. Every method of the kernel interfaces fails on demand
// with FailNext(method, err) (see pkg/fault), changing nothing.
package testing
