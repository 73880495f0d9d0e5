# fedhpo: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fedhpo run configs/default.yaml --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check fedhpo tests
	$(BIN)/ruff format --check fedhpo tests
	$(BIN)/pytest -q

typecheck: $(STAMP)
	$(BIN)/mypy fedhpo

clean:
	rm -rf runs reports/*/ fedhpo.db *.db-journal .pytest_cache
