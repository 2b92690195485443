package iptables

import (
	"bytes"
	"io"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// StreamedPlan is a full render whose payload is written on demand, for a consumer
// that takes it as a stream (dry-run's standard output): WriteTo writes exactly
// Render's payload, without ever holding its nat rules, which are most of it (46 of
// 48 MB at 10k services × 10 endpoints).
type StreamedPlan struct {
	// Stats counts what the payload writes, as Render's.
	Stats Stats

	snap        *endpoints.Snapshot
	cfg         *Config
	filter, nat *tableWriter // nat without its rules
}

// RenderStream renders snap as Render does, keeping the filter block and the nat
// declarations and deletions; WriteTo renders the nat rules again as it writes them.
func RenderStream(snap *endpoints.Snapshot, cfg *Config, existingNATChains []string) *StreamedPlan {
	plan, filter, nat := renderTables(snap, cfg, existingNATChains, true)
	return &StreamedPlan{Stats: plan.Stats, snap: snap, cfg: cfg, filter: filter, nat: nat}
}

// streamFlushBytes is how much of the nat rules WriteTo buffers between writes.
const streamFlushBytes = 256 << 10

// WriteTo implements io.WriterTo: it writes Render's payload to w.
func (p *StreamedPlan) WriteTo(w io.Writer) (int64, error) {
	var written int64
	var err error
	flush := func(buf *bytes.Buffer) {
		if err == nil {
			var n int
			n, err = w.Write(buf.Bytes())
			written += int64(n)
		}
		buf.Reset()
	}
	hooks := p.cfg.hooks
	var head bytes.Buffer
	head.Grow(p.filter.decls.Len() + p.filter.rules.Len() + p.nat.decls.Len() + 4096)
	hooks.writeCanaries(&head, "mangle")
	p.filter.writeHooked(&head, "filter", hooks)
	head.WriteString("*nat\n")
	head.Write(p.nat.decls.Bytes())
	hooks.writeCanaryDecl(&head)
	hooks.writeDecls(&head, "nat")
	flush(&head)

	// The nat rules in Render's order, counted into a Stats nobody reads: Render's
	// were counted by RenderStream.
	var recount Stats
	rules := &tableWriter{stats: &recount, skipDecls: true}
	rules.rules.Grow(streamFlushBytes + 64<<10)
	for _, r := range p.cfg.masqueradeRules().NAT {
		rules.rule("-A", string(r.Chain), r.Spec)
	}
	b := &fragmentBuilder{filter: &tableWriter{stats: &recount, skipDecls: true, skipRules: true}, nat: rules}
	for _, name := range p.snap.SortedServices() {
		writeService(b, p.snap.Services[name], p.snap.Endpoints[name], p.cfg)
		if rules.rules.Len() >= streamFlushBytes {
			flush(&rules.rules)
		}
	}
	for _, spec := range nodePortsJumps(p.cfg) {
		rules.rule("-A", ChainServices, spec)
	}
	hooks.writeInserts(&rules.rules, "nat")
	rules.rules.Write(p.nat.deletes.Bytes())
	rules.rules.WriteString("COMMIT\n")
	flush(&rules.rules)
	return written, err
}
