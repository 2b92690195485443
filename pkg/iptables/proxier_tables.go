package iptables

import (
	"context"
	"fmt"

	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// readTables reads what a full sync needs of the kernel: the nat chains, to delete
// the stale ones, and, where the Interface scans tables (xtables.TableScanner, as
// Exec does), the hooks already in place, so that the payload adds the missing ones
// and the canaries (foldedHooks): two iptables-save runs instead of ~30 processes.
// Otherwise the hooks and canaries are ensured one by one first, as kube-proxy does.
func (p *Proxier) readTables(ctx context.Context) ([]string, error) {
	scanner, ok := p.ipt.(xtables.TableScanner)
	if !ok {
		p.rendered.hooks = nil
		if err := p.ensureHooks(ctx); err != nil {
			return nil, err
		}
		existing, err := p.ipt.ChainNames(ctx, "nat")
		if err != nil {
			return nil, fmt.Errorf("listing nat chains to find stale ones: %w", err)
		}
		return existing, nil
	}
	tables := map[string]*savedTable{}
	for _, table := range []xtables.Table{xtables.TableNAT, xtables.TableFilter} {
		saved := &savedTable{}
		err := scanner.ScanTable(ctx, table, func(line []byte) error {
			saved.scanLine(line)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the %s table for stale chains and missing hooks: %w", table, err)
		}
		tables[string(table)] = saved
	}
	p.rendered.hooks = planHooks(Hooks(p.cfg), tables, p.rendered.renderDeclares)
	return tables["nat"].chains, nil
}
