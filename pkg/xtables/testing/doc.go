// Package testing (imported as xtablestest) provides Fake, a strict
// in-memory stand-in for the kernel's iptables of one family.
//
// Fake is built on ruleset.Apply, so it rejects what iptables-restore
// would: jumps to missing chains, deleting a referenced chain, unknown
// matches, DNAT outside nat. A failed restore changes nothing. It records
// every restore payload so tests can assert what was sent, and trace packets
// through the result with pkg/xtables/tracer.
//
// Its errors are the *xtables.Error values Exec returns for the same faults
// (a restore's failing line, a missing chain; LockTimeout for injection), and
// every method fails on demand with FailNext (see pkg/fault).
package testing
