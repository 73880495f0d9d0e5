"""Files that are not valid YAML text: one clean line naming the file and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedhpo.cli.main import main

DEEP = "a: " + "[" * 10_000 + "]" * 10_000 + "\n"
BAD_FILES = {
    "recursive_alias": (b"a: &a [*a]\n", "recursive alias", 1),
    "recursive_alias_map": (b"client: &c\n  lr: 0.1\n  me: *c\n", "recursive alias", 3),
    "deep": (DEEP.encode(), "nested more than", 1),
    "deep_maps": (("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 3000))).encode(),
                  "nested more than", None),
    "not_utf8": (b"client:\n  lr: 0.1 \xff\xfe\n", "not UTF-8", 2),
    "python_tag": (b"client: !!python/object/apply:os.system ['true']\n", "python/object", 1),
    "python_name": (b"!!python/name:os.system\n", "python/name", 1),
}  # fmt: skip


@pytest.mark.parametrize("command", [["run"], ["space", "check"]])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_one_line_exit_2(capsys, tmp_path: Path, command: list[str], case: str) -> None:
    content, fragment, line = BAD_FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    code = main([*command, str(path)])
    _, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert fragment in err
    where = f"{path}:{line}:" if line is not None else f"{path}"
    assert err.startswith(f"fedhpo: error: {where}"), err


def test_tune_on_a_csv_with_inf_stops_before_any_study(capsys, tmp_path: Path) -> None:
    rows = [f"{i}.0,{10 * i},{i % 2}" for i in range(1, 40)]
    rows[4] = "5.0,inf,1"
    (tmp_path / "t.csv").write_text("size,weight,target\n" + "\n".join(rows) + "\n")
    (tmp_path / "base.yaml").write_text(
        f"data: {{name: csv, options: {{path: {tmp_path / 't.csv'}}}, "
        "partition: {num_clients: 3, min_size: 2}}\nmodel: {name: logreg}\n"
        "federation: {rounds: 2, clients_per_round: 2}\n"
    )
    space = tmp_path / "space.yaml"
    space.write_text(
        "base: base.yaml\ntuner: {sampler: random, trials: 2}\n"
        "params:\n  client.lr: {type: float, low: 0.01, high: 0.1}\n"
    )
    db = tmp_path / "s.db"
    code = main(["tune", "--space", str(space), "--storage", f"sqlite:///{db}"])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert f"{tmp_path / 't.csv'}:6:" in err and "column 'weight', row 5" in err
    assert not db.exists()  # nothing written: no file, so no study
