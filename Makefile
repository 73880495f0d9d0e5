# fedhpo: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test typecheck install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The demo: tune client lr and FedProx mu on Synthetic(1,1) with low-fidelity trials (20 of
# 200 rounds; trial 0 is the base config) in two processes, re-run the top 2 and the base
# config at full fidelity with 2 seeds each (short runs favour aggressive learning rates),
# export the winner, run it, report.
# Running it again resumes the same study (sqlite:///fedhpo.db) with more trials.
DEMO_TRIALS ?= 30
DEMO_JOBS ?= 2
DEMO_PROMOTE ?= 2
DEMO_SEEDS ?= 2

demo: $(STAMP)
	$(BIN)/fedhpo tune --space searchspaces/lr_mu.yaml --trials $(DEMO_TRIALS) --jobs $(DEMO_JOBS) \
		--promote $(DEMO_PROMOTE) --seeds $(DEMO_SEEDS)
	$(BIN)/fedhpo leaderboard lr_mu --top 10
	$(BIN)/fedhpo best lr_mu --out configs/best_lr_mu.yaml
	$(BIN)/fedhpo run configs/best_lr_mu.yaml --out runs/best_lr_mu
	$(BIN)/fedhpo report lr_mu --out reports/lr_mu

test: $(STAMP)
	$(BIN)/ruff check fedhpo tests
	$(BIN)/ruff format --check fedhpo tests
	$(BIN)/mypy fedhpo
	$(BIN)/pytest -q

typecheck: $(STAMP)
	$(BIN)/mypy fedhpo

clean:
	rm -rf runs reports/*/ fedhpo.db *.db-journal .pytest_cache
