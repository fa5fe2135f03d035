# Tuma's two commands: `make run` (the gateway on this machine) and `make test` (every test).
# Both set up what they need: a Python 3.13 virtualenv for the tools and tests, and one for
# MiniStack (it pins botocore differently from aws-sam-cli, so it cannot share ours).

SHELL := /bin/bash
# The first Python 3.13 that really runs (a pyenv shim may exist for a version that is not active).
PYTHON313 ?= $(shell for candidate in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
  if "$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then \
    command -v "$$candidate"; break; fi; done)
VENV := .venv
MINISTACK_VENV := .tuma/ministack-venv
# checkov pins boto3/botocore apart from aws-sam-cli and moto: it gets a virtualenv of its own.
SCAN_VENV := .tuma/scan-venv
PY := $(VENV)/bin/python
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: run test scan unit e2e bench faults clean

run: $(VENV)/.installed $(MINISTACK_VENV)/.installed
	$(PY) -m local.stack

test: scan $(VENV)/.installed $(MINISTACK_VENV)/.installed
	$(PY) -m pytest tests/unit
	$(PY) -m pytest tests/e2e

# The template (cfn-lint; checkov, every skip justified in the template's Metadata) and the code
# (bandit, medium severity and up). No network: the dependency audit is in docs/security.md.
scan: $(VENV)/.installed $(SCAN_VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	$(VENV)/bin/bandit --quiet --recursive layers functions --severity-level medium

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

e2e: $(VENV)/.installed $(MINISTACK_VENV)/.installed
	$(PY) -m pytest tests/e2e

bench: $(VENV)/.installed $(MINISTACK_VENV)/.installed
	$(PY) bench/run.py

faults: $(VENV)/.installed $(MINISTACK_VENV)/.installed
	$(PY) bench/faults.py

$(VENV)/.installed: requirements-dev.txt layers/tuma/requirements.txt
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "Tuma needs Python 3.13 (the Lambda runtime in template.yaml is python3.13, and sam build"; \
	  echo "must find it on PATH). Install it, e.g. 'pyenv install 3.13', or set PYTHON313=/path/to/python3.13."; \
	  exit 1; fi
	$(PYTHON313) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -r requirements-dev.txt
	$(VENV)/bin/pip install $(PIP_QUIET) -e '.[cli]'
	touch $@

$(MINISTACK_VENV)/.installed: local/requirements-ministack.txt
	@mkdir -p .tuma
	$(PYTHON313) -m venv $(MINISTACK_VENV)
	$(MINISTACK_VENV)/bin/pip install $(PIP_QUIET) -r local/requirements-ministack.txt
	touch $@

$(SCAN_VENV)/.installed: local/requirements-scan.txt
	@mkdir -p .tuma
	$(PYTHON313) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install $(PIP_QUIET) -r local/requirements-scan.txt
	touch $@

clean:
	rm -rf .aws-sam .tuma $(VENV)
