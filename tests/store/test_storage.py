"""Storage URLs: passwords are masked wherever fedhpo prints, logs or stores a URL."""

from __future__ import annotations

import os
import uuid

import optuna
import pytest

from fedhpo.cli.main import main
from fedhpo.store import mask_url

SECRET = "s3cret-fedhpo"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgresql+psycopg://u:p%40ss@h:5432/db?sslmode=require",
         "postgresql+psycopg://u:***@h:5432/db?sslmode=require"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # an unencoded '@' too
        ("postgresql://u@h/db?password=secret&sslmode=off",
         "postgresql://u@h/db?password=***&sslmode=off"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://:secret@h/db", "postgresql://:***@h/db"),
        ("sqlite:///fedhpo.db", "sqlite:///fedhpo.db"),
        ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),  # a path, not a password
        ("not a url:secret@", "not a url:secret@"),
    ],
)  # fmt: skip
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.parametrize(
    "command",
    [["studies"], ["leaderboard", "x"], ["best", "x"], ["report", "x"], ["tune", "--space"]],
)
def test_unreachable_database_error_masks_the_password(capsys, space, command) -> None:
    url = f"postgresql://fedhpo:{SECRET}@127.0.0.1:1/nodb"
    argv = [*command, str(space)] if command[-1] == "--space" else command
    code, text = _cli(capsys, *argv, "--storage", url)
    assert code == 2 and "Traceback" not in text
    assert SECRET not in text and "fedhpo:***@127.0.0.1:1/nodb" in text


PG = os.environ.get("FEDHPO_TEST_POSTGRES_URL")


@pytest.mark.skipif(not PG, reason="set FEDHPO_TEST_POSTGRES_URL=postgresql://... (trust auth)")
def test_password_never_reaches_output_reports_or_the_study(capsys, space, tmp_path) -> None:
    assert PG is not None
    scheme, _, rest = PG.partition("://")
    user, _, host = rest.partition("@")
    url = f"{scheme}://{user.split(':')[0]}:{SECRET}@{host}"  # trust auth ignores it
    name = f"fedhpo-pw-{uuid.uuid4().hex[:8]}"
    try:
        texts = [_cli(capsys, "tune", "--space", str(space), "--study", name, "--storage", url)]
        assert texts[0][0] == 0, texts[0][1]
        assert ":***@" in texts[0][1]
        for argv in (["studies"], ["leaderboard", name], ["best", name]):
            texts.append(_cli(capsys, *argv, "--storage", url))
        out = tmp_path / "report"
        texts.append(_cli(capsys, "report", name, "--storage", url, "--out", str(out)))
        assert all(code == 0 for code, _ in texts), texts
        assert not [t for _, t in texts if SECRET in t]
        files = [p for p in out.rglob("*") if p.is_file()]
        assert files and not [p for p in files if SECRET.encode() in p.read_bytes()]
        storage = optuna.storages.RDBStorage(PG)
        sid = storage.get_study_id_from_name(name)
        attrs: list[object] = [storage.get_study_user_attrs(sid)]
        attrs += [storage.get_study_system_attrs(sid)]
        attrs += [(t.user_attrs, t.system_attrs) for t in storage.get_all_trials(sid)]
        assert len(attrs) == 4 and SECRET not in repr(attrs)
    finally:
        optuna.delete_study(study_name=name, storage=PG)
