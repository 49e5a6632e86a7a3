# The two commands of README.md: `make nightly` (set up, then a fuzz campaign
# against real Caffe) and `make test` (set up, then the test suite).
# Both install what they need: Debian's debootstrap, graphviz and bubblewrap, the CPU build of
# torch (pinned: a looser spec may pull a multi-GB CUDA build), this package, and the
# rootfs Caffe runtime (built once per machine, cached outside the checkout).
# A night's seed is new (the date) unless SEED is given; the corpus keeps what earlier
# nights found, replayed first.

PYTHON ?= python3
REPORT ?= reports/nightly
TIME ?= 10m
SEED ?=
CORPUS ?= reports/corpus

.PHONY: setup nightly test

setup:
	@command -v debootstrap >/dev/null && command -v dot >/dev/null && command -v bwrap >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq debootstrap graphviz bubblewrap >/dev/null)
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e '.[test]'
	$(PYTHON) -m harness runtime install --runtime rootfs

nightly: setup
	$(PYTHON) -m harness fuzz --against caffe --time $(TIME) $(if $(SEED),--seed $(SEED)) --jobs 2 \
		--report $(REPORT) --corpus $(CORPUS)

test: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest -q -p no:cacheprovider
