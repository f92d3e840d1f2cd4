# kmsbridge: `make test` and `make demo` work on a fresh machine with Python 3.11 and pip.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30

.PHONY: test demo bench lint typecheck checkov lambda clean tf-docs

$(BIN)/kmsbridge: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# checkov pins an older boto3 and ships its own hcl2 fork: it lives in its own virtualenv.
$(CHECKOV_VENV)/bin/checkov:
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==$(CHECKOV_VERSION)

test: $(BIN)/kmsbridge $(CHECKOV_VENV)/bin/checkov
	KMSBRIDGE_CHECKOV=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(BIN)/pytest -q

lint: $(BIN)/kmsbridge
	$(BIN)/ruff check kmsbridge lambda tests bench
	$(BIN)/ruff format --check kmsbridge lambda tests bench
	$(BIN)/lint-imports

typecheck: $(BIN)/kmsbridge
	$(BIN)/mypy

checkov: $(CHECKOV_VENV)/bin/checkov
	$(CHECKOV_VENV)/bin/checkov --directory terraform --framework terraform --skip-download --quiet --compact

demo: $(BIN)/kmsbridge
	$(BIN)/kmsbridge demo

bench: $(BIN)/kmsbridge
	$(BIN)/python -m bench

lambda: $(BIN)/kmsbridge
	$(BIN)/kmsbridge lambda build -o dist/

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Rewrite the inputs/outputs tables of the Terraform READMEs (tests/terraform/test_docs.py checks them).
tf-docs: $(BIN)/kmsbridge
	$(BIN)/python -m tests.terraform.docs
