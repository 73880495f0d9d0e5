"""Load: 8 workers share 400 one-round trials on PostgreSQL; exactly 400 finish, none twice,
none lost (what each worker reports finishing is in the database, once)."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter

import optuna
import pytest

from fedhpo.tune import tune
from tests.tune.procs import check_consistent, finish, gate, gated_space, reported, start

URL = os.environ.get("FEDHPO_TEST_POSTGRES_URL")
# This test counts trials, it does not test durability: commits need not wait for the disk
# (a per-connection setting; the shared server's configuration is not touched).
FAST_COMMITS = "options=-csynchronous_commit%3Doff"
WORKERS, TRIALS = 8, 400


@pytest.mark.slow
@pytest.mark.skipif(not URL, reason="set FEDHPO_TEST_POSTGRES_URL=postgresql://... (load test)")
def test_eight_workers_four_hundred_trials(monkeypatch, tmp_path) -> None:
    assert URL
    url = f"{URL}{'&' if '?' in URL else '?'}{FAST_COMMITS}"
    name = f"fedhpo-load-{uuid.uuid4().hex[:8]}"
    space = gated_space(tmp_path, monkeypatch, rounds=1)
    gate(tmp_path).unlink()  # trials run straight through
    tune(space, storage=url, study=name, trials=TRIALS, create_only=True)
    try:
        began = time.monotonic()
        args = ("worker", "--study", name, "--storage", url, "--plugin", "gate_plugin")
        procs = [start(tmp_path, *args, name=f"w{i}") for i in range(WORKERS)]
        assert finish(procs, timeout=600) == [0] * WORKERS
        seconds = time.monotonic() - began
        figures = check_consistent(url, name, budget=TRIALS)
        assert figures["failed"] == 0
        numbers = reported(tmp_path, [f"w{i}" for i in range(WORKERS)])
        assert sorted(numbers) == list(range(TRIALS))  # each reported by exactly one worker
        per_worker = Counter(len(reported(tmp_path, [f"w{i}"])) for i in range(WORKERS))
        print(f"\nFIGURES load: {figures}, {seconds:.1f} s wall, trials per worker {per_worker}")
    finally:
        optuna.delete_study(study_name=name, storage=URL)
