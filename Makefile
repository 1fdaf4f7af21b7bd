# Two entry points for a fresh machine (Python 3.11+, Go 1.26+ for the cluster tests):
#   make example   install into .venv and run examples/digits.yaml locally
#   make test      install everything the tests need and run the whole suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kubenas-installed

.PHONY: example test lint unit crds clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

example: $(STAMP)
	$(VENV)/bin/kubenas run examples/digits.yaml --output runs

lint: $(STAMP)
	$(VENV)/bin/ruff check operator trainer tests benchmarks
	$(VENV)/bin/mypy

crds: $(STAMP)
	$(VENV)/bin/kubenas crd --output crds
	$(VENV)/bin/kubenas crd --output helm/kubenas/crds

unit: $(STAMP)
	$(PY) -m pytest -m "not slow and not cluster"

# The whole suite: lint, unit, slow (real training) and cluster tests against a real control plane
# built from Go modules (cached outside the repository; the first build takes 10-20 minutes), with
# Prometheus and the Pushgateway from Debian's packages (tests/services/install.sh), and helm built from
# helm.sh/helm/v4 for the chart's tests (tests/helm/build.sh, cached the same way).
test: $(STAMP)
	bash tests/services/install.sh
	bash tests/controlplane/build.sh > /dev/null
	bash tests/helm/build.sh > /dev/null
	$(MAKE) --no-print-directory lint VENV=$(VENV)
	$(PY) -m pytest -m "slow or cluster or not slow" -v --durations=15

clean:
	rm -rf $(VENV) runs
