# fedhpo: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test typecheck install clean clean-grids

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The demo: tune client lr and FedProx mu on Synthetic(1,1) with fedhpo's default search
# (searchspaces/lr_mu.yaml has no fidelity or tuner section) in two processes, with a budget
# of 6 full runs instead of 10 so that it stays near 5 minutes (a full run of this problem
# is about a CPU-minute); export the winner, run it at full fidelity, report. Running it
# again resumes the same study (sqlite:///fedhpo.db) and spends another budget.
DEMO_JOBS ?= 2
DEMO_BUDGET ?= 6

demo: $(STAMP)
	$(BIN)/fedhpo tune --space searchspaces/lr_mu.yaml --jobs $(DEMO_JOBS) --budget $(DEMO_BUDGET)
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

# `clean` keeps the quality benchmark's grids (runs/bench/quality/: hours of full runs,
# reused by every rerun of `fedhpo bench --workload quality`); `clean-grids` drops them.
clean:
	find runs -mindepth 1 -maxdepth 1 ! -name bench -exec rm -rf {} + 2>/dev/null || true
	find runs/bench -mindepth 1 -maxdepth 1 ! -name quality -exec rm -rf {} + 2>/dev/null || true
	rm -rf reports/*/ fedhpo.db fedhpo.db-wal fedhpo.db-shm fedhpo.db.lock *.db-journal configs/best_*.yaml .pytest_cache

clean-grids:
	rm -rf runs/bench/quality
