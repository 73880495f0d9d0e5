"""Bad data in tables: one DataError naming file, column and row; dropped rows are counted."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from fedhpo.config import DataConfig, PartitionConfig
from fedhpo.errors import DataError
from fedhpo.sim.datasets import build_dataset

HEADER = "size,color,user,weight,target\n"
GOOD = [f"{i}.0,{'red' if i % 2 else 'blue'},u{i % 3},{10 * i},{'yes' if i % 2 else 'no'}" for i in range(1, 13)]  # fmt: skip


def build(path: Path, val_fraction: float = 0.1, **options):
    cfg = DataConfig(
        name="csv",
        options={"path": str(path), "label": "target", **options},
        partition=PartitionConfig(num_clients=2, min_size=1),
        val_fraction=val_fraction,
    )
    return build_dataset(cfg)


def table(tmp_path: Path, rows: list[str], name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def with_row(index: int, row: str) -> list[str]:
    return GOOD[:index] + [row] + GOOD[index + 1 :]


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("5.0,red,u1,inf,yes", "'inf' is not a finite number"),
        ("5.0,red,u1,-inf,yes", "'-inf' is not a finite number"),
        ("5.0,red,u1,NaN,yes", "'NaN' is not a finite number"),
        ("5.0,red,u1,1e400,yes", "'1e400' is not a finite number"),
        ("5.0,red,u1,heavy,yes", "'heavy' is not a number"),
    ],
)
def test_bad_numbers_name_file_column_row_and_line(tmp_path, bad, fragment) -> None:
    path = table(tmp_path, with_row(4, bad))
    with pytest.raises(DataError) as err:
        build(path)
    e = err.value
    assert e.source == str(path) and e.line == 6  # header + 4 good rows, then the bad one
    assert "column 'weight'" in e.message and "row 5" in e.message and fragment in e.message
    assert "'?'" in e.message  # how to fix: correct it or mark it missing


def test_bad_number_in_the_test_file_names_that_file(tmp_path) -> None:
    train = table(tmp_path, GOOD)
    test = table(tmp_path, with_row(1, "2.0,red,u1,inf,yes")[:3], "test.csv")
    with pytest.raises(DataError, match="column 'weight', row 2") as err:
        build(train, test_path=str(test))
    assert err.value.source == str(test) and err.value.line == 3


def test_headerless_and_skiprows_lines(tmp_path) -> None:
    path = tmp_path / "raw.csv"
    path.write_text("junk line\n" + "\n".join(GOOD[:3] + ["4.0,red,u1,x,yes"] + GOOD[4:]) + "\n")
    with pytest.raises(DataError, match="column 3, row 4") as err:
        build(path, header=False, label=-1, skiprows=1)
    assert err.value.line == 5


def test_an_unreadable_test_file_points_at_test_skiprows(tmp_path) -> None:
    # like UCI Adult's adult.test: one line that is not data before the rows
    train = table(tmp_path, GOOD)
    test = tmp_path / "test.csv"
    test.write_text("|1x3 Cross validator\n" + HEADER + "\n".join(GOOD[:4]) + "\n")
    with pytest.raises(DataError, match=r"data\.options\.test_skiprows \(lines") as err:
        build(train, test_path=str(test), header=False, label=-1)
    assert err.value.source == str(test)
    assert len(build(train, test_path=str(test), test_skiprows=1).test_y) == 4


def test_parquet_inf_names_the_row(tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(table(tmp_path, GOOD))
    frame.loc[2, "size"] = float("inf")
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="column 'size', row 3: inf is not a finite number") as err:
        build(tmp_path / "t.parquet")
    assert err.value.line is None and err.value.source == str(tmp_path / "t.parquet")


@pytest.mark.parametrize(
    ("label", "fragment"),
    [("nope", "no column 'nope'"), (9, "column index 9 is out of range: the file has 5 columns")],
)
def test_missing_label_column_names_the_file(tmp_path, label, fragment) -> None:
    path = table(tmp_path, GOOD)
    with pytest.raises(DataError, match=fragment) as err:
        build(path, label=label)
    assert err.value.source == str(path) and err.value.key == "data.options.label"


@pytest.mark.filterwarnings("ignore:.*dropped 2 of 14 rows")
def test_a_client_whose_rows_all_miss_values_is_an_error(tmp_path) -> None:
    rows = GOOD + ["13.0,red,u9,?,yes", "14.0,,u9,140,no"]
    path = table(tmp_path, rows)
    with pytest.raises(DataError, match="client 'u9' .column 'user'. has no complete row") as err:
        build(path, client_column="user")
    assert "rows 13, 14" in err.value.message and err.value.line == 14


def test_dropped_rows_are_counted_and_reported(tmp_path) -> None:
    rows = with_row(2, "3.0,red,u0,?,yes")
    rows = rows[:6] + ["7.0,,u1,70,yes"] + rows[7:] + ["", "13.0,blue,u2,130,"]
    path = table(tmp_path, rows)
    with pytest.warns(UserWarning, match=r"dropped 3 of 13 rows with a missing value") as got:
        ds = build(path)
    message = str(got[0].message)
    assert str(path) in message and "'weight' (1)" in message and "'color' (1)" in message
    assert "'target' (1)" in message and "first: row 3, line 4" in message  # the first one
    assert ds.dropped_rows == 3
    assert len(ds.x) + len(ds.test_x) == 10  # the blank line is no row at all


def test_a_clean_table_drops_nothing_silently(tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = build(table(tmp_path, GOOD), val_fraction=0.2)  # 5-row clients: 1 validation row
    assert ds.dropped_rows == 0 and len(ds.x) + len(ds.test_x) == 12


def test_number_like_text_columns_stay_categories(tmp_path) -> None:
    rows = [r.replace("red", "9th").replace("blue", "10th") for r in GOOD]
    ds = build(table(tmp_path, rows))
    assert ds.feature_shape == (1 + 2 + 3 + 1,)  # size, color one-hot (2), user one-hot (3)


@pytest.mark.parametrize(("sep", "header"), [(";", True), (";", False), ("\t", True)])
def test_a_file_not_separated_by_commas_says_so(tmp_path, sep, header) -> None:
    # read as one column: "the table has no feature columns besides the label", no file named
    lines = (["size;weight;target"] if header else []) + [f"{i}.0;{i};{i % 2}" for i in range(12)]
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(line.replace(";", sep) for line in lines) + "\n")
    with pytest.raises(DataError, match="one column.*separated by " + re.escape(repr(sep))) as err:
        build(path, label=-1, header=header)
    assert err.value.source == str(path) and "convert it to commas" in err.value.message


def test_no_feature_column_besides_label_and_client_names_the_file(tmp_path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("user,target\n" + "\n".join(f"u{i % 3},{i % 2}" for i in range(12)) + "\n")
    with pytest.raises(DataError, match="no feature columns besides the label and the client"):
        build(path, client_column="user")


def test_a_file_with_only_a_header_says_so(tmp_path) -> None:
    # said "only 0 complete row(s); cannot split off a test set", naming no file
    path = table(tmp_path, [])
    with pytest.raises(DataError, match="no data rows below its header") as err:
        build(path)
    assert err.value.source == str(path) and err.value.key == "data.options.path"
    test = table(tmp_path, [], "test.csv")
    with pytest.raises(DataError, match="no data rows") as err:
        build(table(tmp_path, GOOD), test_path=str(test))
    assert err.value.source == str(test) and err.value.key == "data.options.test_path"


@pytest.mark.filterwarnings("ignore:.*rows with a missing value")
def test_a_file_whose_rows_all_miss_values_names_it(tmp_path) -> None:
    path = table(tmp_path, ["1.0,red,u1,?,yes", "2.0,,u1,20,no"])
    with pytest.raises(DataError, match="none of its 2 rows is complete") as err:
        build(path)
    assert err.value.source == str(path)


def test_one_row_cannot_be_split_and_the_file_is_named(tmp_path) -> None:
    path = table(tmp_path, GOOD[:1])
    with pytest.raises(DataError, match="only 1 complete row.*test_path") as err:
        build(path)
    assert err.value.source == str(path)


def test_a_folder_given_as_the_table_is_called_a_folder(tmp_path) -> None:
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(DataError, match="is a folder, not a file") as err:
        build(tmp_path / "data.csv")
    assert err.value.source == str(tmp_path / "data.csv")
