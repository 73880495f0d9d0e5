"""What the job processes of ``fedhpo tune --jobs N`` print: the notes of building the data
are the parent's, printed once, as one plain line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedhpo.cli.main import main


def _csv_with_a_missing_value(path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["a,b,label"]
    for i in range(240):
        a, b = rng.normal(size=2)
        rows.append(f"{'?' if i == 7 else f'{a:.3f}'},{b:.3f},{int(a + b > 0)}")
    path.write_text("\n".join(rows) + "\n")


def test_job_processes_do_not_repeat_the_data_notes_as_python_warnings(tmp_path, capfd) -> None:
    # with --jobs 2 each job process printed the loader's note again as a raw warning:
    # "/.../_table_clean.py:132: UserWarning: ..." and the source line below it
    _csv_with_a_missing_value(tmp_path / "t.csv")
    (tmp_path / "base.yaml").write_text(
        f"data: {{name: csv, options: {{path: {tmp_path / 't.csv'}, label: label}},"
        " partition: {method: iid, num_clients: 4}}\n"
        "model: {name: logreg}\nfederation: {rounds: 2, clients_per_round: 4}\n"
    )
    (tmp_path / "space.yaml").write_text(
        "base: base.yaml\nobjective: {metric: val_accuracy}\n"
        "tuner: {sampler: random, pruner: none, seed: 0}\n"
        "params:\n  client.lr: {type: float, low: 0.01, high: 0.5, log: true}\n"
    )
    argv = ["tune", "--space", str(tmp_path / "space.yaml"), "--trials", "2", "--jobs", "2"]
    assert main([*argv, "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 0
    err = capfd.readouterr().err
    assert "UserWarning" not in err and "warnings.warn" not in err
    notes = [line for line in err.splitlines() if "dropped 1 of" in line]
    assert len(notes) == 1 and notes[0].startswith("fedhpo: note: ")
