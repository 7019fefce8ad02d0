# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Both bootstrap .venv from pyproject.toml themselves (re-installing when it changes).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
OCTOKIT := .cache/octokit
WEBHOOK_EXAMPLES_VERSION := 7.6.1
OPENAPI_VERSION := 23.0.2
SOURCES := app handlers tests $(wildcard bench)
# Toolchain the sandboxed commands of the demo and the tests see (read-only): a venv with pytest, built on the
# system's python where there is one (a uid other than Otto's must be able to read the interpreter).
SANDBOX_TOOLS := .cache/sandbox-tools
SANDBOX_PY ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PY))
CHROMIUM := /usr/bin/chromium

# The suite runs on PYTEST_WORKERS processes (pytest-xdist): it mostly waits (processes starting, Temporal, the
# sandbox), so twice the cores keeps both busy. Override for a bigger machine: `make test PYTEST_WORKERS=8`.
PYTEST_WORKERS ?= 4
# `make check`: the fast loop after each edit (static checks + the pure domain, texts, routing and the
# workflow tests under Temporal's time-skipping server); `make test` before you push.
CHECK_TESTS := tests/test_domain.py tests/test_domain_context.py tests/test_domain_failures.py
CHECK_TESTS += tests/test_texts.py tests/test_routing.py tests/test_run_workflow.py tests/test_github_retry.py
CHECK_TESTS += tests/test_replay.py

.PHONY: demo test check suite check-tests lint typecheck serve bench eval clean histories

demo: $(STAMP) $(SANDBOX_TOOLS)/.done
	$(BIN)/otto demo

serve: $(STAMP)
	$(BIN)/otto serve

# What the tests need is fetched side by side (the venv, GitHub's fixtures from npm, chromium); then the
# lint, and mypy beside the tests: the suite leaves a core idle often enough to absorb it.
test:
	@$(MAKE) --no-print-directory -j3 $(STAMP) $(OCTOKIT)/.done $(CHROMIUM)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory -j2 typecheck suite

suite: $(STAMP) $(OCTOKIT)/.done $(SANDBOX_TOOLS)/.done $(CHROMIUM)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

check: $(STAMP) $(SANDBOX_TOOLS)/.done lint
	@$(MAKE) --no-print-directory -j2 typecheck check-tests

check-tests: $(STAMP) $(SANDBOX_TOOLS)/.done
	$(BIN)/pytest -q $(CHECK_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

# Otto over the eval's instance set (bench/eval_set): the scripted behaviours, the pilot's A/B, and the real
# model when ANTHROPIC_API_KEY is set. Outputs in .cache/bench/eval/.
eval: $(STAMP) $(SANDBOX_TOOLS)/.done
	$(BIN)/python -m bench eval

# Re-record the replay fixtures (tests/histories/*.json) from the end-to-end scenarios; see CONTRIBUTING.md.
HISTORY_TESTS := tests/test_run_e2e.py tests/test_failures_e2e.py tests/test_merge_e2e.py tests/test_maintainer_loop.py
HISTORY_TESTS += tests/test_lifecycle_e2e.py
HISTORY_SCENARIOS := labeled_issue_becomes or pilot_skips_it or human_retry_with_guidance or budget_fails_closed
HISTORY_SCENARIOS += or merges_in_order or squash_or_rebase or long_agent_command or otto_merge_merges or plan_approval
HISTORY_SCENARIOS += or posts_nothing or model_outage_is_waited_out or red_pr_is_verified
HISTORY_TESTS += tests/test_people_e2e.py
histories: $(STAMP) $(SANDBOX_TOOLS)/.done
	OTTO_RECORD_HISTORIES=1 $(BIN)/pytest -q $(HISTORY_TESTS) -k "$(HISTORY_SCENARIOS)"
	$(BIN)/pytest -q tests/test_replay.py

# uv (from PyPI) installs in a fifth of pip's time. Bytecode is written as modules are first imported (only
# those used, once), so a PYTHONDONTWRITEBYTECODE inherited from the environment is dropped here; the sandbox's
# read-only toolchain can't be written to later, so it is compiled when it is built.
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv>=0.13,<0.14"
	$(BIN)/uv pip install -q --python $(BIN)/python -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

$(SANDBOX_TOOLS)/.done: $(STAMP)
	rm -rf $(SANDBOX_TOOLS)
	$(SANDBOX_PY) -m venv --without-pip $(SANDBOX_TOOLS)
	$(BIN)/uv pip install -q --compile-bytecode --python $(SANDBOX_TOOLS)/bin/python pip "pytest>=9,<10"
	chmod -R a+rX $(SANDBOX_TOOLS)
	touch $@
# Mission Control's browser tests drive Debian's chromium (Playwright can't download its own browser here).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
	    echo "Mission Control's browser tests need $(CHROMIUM): sudo apt-get install chromium" >&2; exit 1; \
	fi

# GitHub's published webhook examples and REST description (npm registry), used by the fidelity tests.
$(OCTOKIT)/.done:
	mkdir -p $(OCTOKIT)
	cd $(OCTOKIT) && npm pack --silent --loglevel=error \
	    @octokit/webhooks-examples@$(WEBHOOK_EXAMPLES_VERSION) @octokit/openapi@$(OPENAPI_VERSION) >/dev/null
	tar -xzf $(OCTOKIT)/octokit-webhooks-examples-$(WEBHOOK_EXAMPLES_VERSION).tgz -C $(OCTOKIT) \
	    package/api.github.com/index.json
	mv $(OCTOKIT)/package/api.github.com/index.json $(OCTOKIT)/webhooks-examples.json
	tar -xzf $(OCTOKIT)/octokit-openapi-$(OPENAPI_VERSION).tgz -C $(OCTOKIT) package/generated/api.github.com.json
	mv $(OCTOKIT)/package/generated/api.github.com.json $(OCTOKIT)/api.github.com.json
	rm -rf $(OCTOKIT)/package $(OCTOKIT)/*.tgz
	touch $@

clean:
	rm -rf $(VENV) .cache .otto
