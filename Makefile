# Switchyard's Makefile is a thin front for the scripts under hack/.
# Every target works from a fresh clone; see README.md.

GO ?= go
BIN := bin/switchyard

.PHONY: build run test lint fuzz bench bench-dryrun-cluster bench-full tools e2e sandbox clean

build: ## Build the switchyard binary into bin/.
	$(GO) build -o $(BIN) ./cmd/proxy

run: ## Dry-run over the bundled example manifests: prints the rules Switchyard would program.
	$(GO) run ./cmd/proxy dry-run -f manifests/examples/ --cluster-cidr 10.244.0.0/16,fd00:244::/56

test: ## Unit tests (no root, no cluster), race detector on, plus a short fuzz pass.
	hack/test.sh

lint: ## gofmt and go vet.
	hack/lint.sh

fuzz: ## Longer fuzz runs of the manifest reader and model conversion.
	FUZZTIME=$${FUZZTIME:-60s} hack/fuzz.sh

bench: ## Go micro-benchmarks of render, partial render and manifest reading; dry-run -f over a 10k x 10 dump vs main.
	hack/bench.sh

bench-dryrun-cluster: ## dry-run --kubeconfig vs kubectl get against the testbed apiserver at 10k x 10 (root, a few minutes).
	hack/bench-dryrun-cluster.sh

tools: ## Build kube-apiserver, etcd, kubectl and kube-proxy v1.37.2 into .cache/tools (cached).
	hack/build-tools.sh

e2e: tools ## Privileged tests on the real testbed (root): control plane, netns nodes, iptables.
	hack/e2e.sh

sandbox: tools ## A control plane with two nodes and example pods, up until Ctrl-C (root).
	hack/sandbox.sh

clean:
	rm -rf bin

.PHONY: bench-sync
bench-sync: ## Rule-sync latency vs kube-proxy on the testbed, quick pass at 1k x 10 (root, a few minutes).
	hack/bench-sync.sh

bench-full: ## Rule-sync latency vs kube-proxy at every scale up to 50k services (root, about an hour).
	hack/bench-full.sh

.PHONY: bench-nftables
bench-nftables: ## nftables mode vs kube-proxy's nftables mode at 10k and 50k x 10, full sync and floors (root, about an hour; not in CI).
	hack/bench-nftables.sh

.PHONY: bench-conntrack
bench-conntrack: ## Stale UDP conntrack cleanup: time and memory at up to 250k entries, before and after (root, a few minutes).
	hack/bench-conntrack.sh

.PHONY: soak
soak: tools ## Churn soak (root, about 35 minutes, not in CI): 5k services, 20 changes/s for SOAK_DURATION (30m); resources must stay flat.
	hack/soak.sh

.PHONY: bench-fullsync
bench-fullsync: ## Periodic full sync at 10k x 10: change latency during it, its CPU, TCP probe failures (root, ~15 minutes; not in CI).
	hack/bench-fullsync.sh

.PHONY: bench-newsvc
bench-newsvc: ## Time to a new service and latency under 50 changes/s vs kube-proxy at 10k x 10 (root, about 15 minutes; part of bench-full).
	hack/bench-newsvc.sh
