"""`mtrank import`: raw CSV files (headerless, text labels) become day folders by configuration alone."""

import csv

import pytest

from mtrank import cli
from mtrank import config as config_lib
from mtrank import csv_import
from mtrank.config import DerivedColumnSpec, RawCsvSpec


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_column_names_become_identifiers():
    assert csv_import.identifier(" education-num ") == "education_num"
    assert csv_import.identifier("class of worker") == "class_of_worker"
    assert csv_import.identifier("2nd score") == "c_2nd_score"
    with pytest.raises(ValueError):
        csv_import.identifier("--")


def test_names_files_one_per_line_and_c45(tmp_path):
    plain = tmp_path / "plain.names"
    plain.write_text("user id\nitem-id\n\nclicked\n")
    assert csv_import.read_names_file(plain) == ["user_id", "item_id", "clicked"]
    c45 = tmp_path / "c45.names"
    c45.write_text("| a comment\nyes, no.   | the class values\n\nage: continuous.\nwork-class: a, b.\n")
    assert csv_import.read_names_file(c45) == ["age", "work_class", "class"]


def test_label_rules_read_as_derived_columns():
    assert csv_import.parse_derived("income_gt_50k = class in >50K, >50K.") == DerivedColumnSpec(
        name="income_gt_50k", column="class", one_of=[">50K", ">50K."])
    assert csv_import.parse_derived("married=marital-status == Married-civ-spouse") == DerivedColumnSpec(
        name="married", column="marital_status", equals="Married-civ-spouse")
    assert csv_import.parse_derived("bought = orders > 0") == DerivedColumnSpec(name="bought", column="orders", above=0.0)
    assert csv_import.parse_derived("rich = class == '>50K'").equals == ">50K"  # quotes are the shell's, not the value's
    assert csv_import.parse_derived('rich = class in ">50K", >50K.').one_of == [">50K", ">50K."]
    for bad in ("just words", "x = y > many", "x = y == "):
        with pytest.raises(ValueError, match="cannot read|not a number"):
            csv_import.parse_derived(bad)
    with pytest.raises(ValueError, match=">= is not supported; use ==, in or >"):
        csv_import.parse_derived("old = age >= 65")


def test_a_headerless_file_gets_its_header_labels_and_no_label_source(tmp_path):
    src = tmp_path / "raw.data"
    src.write_text("| comment\n1, a, 3, yes\n\n2, b, 0, no\n3, a, 7, maybe\n")
    raw = RawCsvSpec(columns=["n", "cat", "orders", "answer"], comment="|", drop=["cat"],
                     derived=[DerivedColumnSpec(name="said_yes", column="answer", equals="yes"),
                              DerivedColumnSpec(name="bought", column="orders", above=0)])
    result = csv_import.import_file(raw, src, tmp_path / "day")
    assert result.target == tmp_path / "day" / "raw.csv"
    # `answer` and `orders` feed labels and `cat` is dropped: none of them is written
    assert _rows(result.target) == [["n", "said_yes", "bought"], ["1", "1", "1"], ["2", "0", "0"], ["3", "0", "1"]]
    assert result.rows == 3
    assert dict(result.derived_values["said_yes"][0]) == {"no": 1, "maybe": 1}  # what became 0 is shown
    assert any("said_yes = 0: 2 rows" in line for line in result.summary())


def test_a_header_where_none_was_declared_a_byte_order_mark_and_latin1(tmp_path):
    raw = RawCsvSpec(columns=["n", "answer"])
    src = tmp_path / "with_header.csv"
    src.write_bytes("\ufeffn,answer\n1,yes\n".encode("utf-8"))
    result = csv_import.import_file(raw, src, tmp_path / "a")
    assert _rows(result.target) == [["n", "answer"], ["1", "yes"]]  # the header is not a data row, the BOM is gone
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"1,yes\n2,caf\xe9\n")
    with pytest.raises(ValueError, match=r"latin\.csv:2: not UTF-8"):
        csv_import.import_file(raw, latin, tmp_path / "b")


def test_columns_written_twice_and_unknown_drops_are_refused(tmp_path):
    src = tmp_path / "day.csv"
    src.write_text("user-id,user id,x\n1,2,3\n")
    with pytest.raises(ValueError, match=r"\['user_id'\] would be written twice"):
        csv_import.import_file(RawCsvSpec(), src, tmp_path / "out")
    src.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"names \['bb'\], which the file does not have"):
        csv_import.import_file(RawCsvSpec(drop=["bb"]), src, tmp_path / "out")


def test_a_header_file_is_copied_with_identifier_names(tmp_path):
    src = tmp_path / "day.csv"
    src.write_text("user-id,Price ,clicked\nu1,1.5,1\nu2,2.0,0\n")
    result = csv_import.import_file(RawCsvSpec(), src, tmp_path / "out")
    assert _rows(result.target) == [["user_id", "Price", "clicked"], ["u1", "1.5", "1"], ["u2", "2.0", "0"]]


def test_bad_rows_name_file_and_line_and_never_replace_good_data(tmp_path):
    raw = RawCsvSpec(columns=["a", "b"], derived=[DerivedColumnSpec(name="big", column="b", above=1)])
    good, bad, text = tmp_path / "x.csv", tmp_path / "bad" / "x.csv", tmp_path / "text" / "x.csv"
    good.write_text("1,2\n3,4\n")
    bad.parent.mkdir()
    bad.write_text("1,2\n3\n")
    text.parent.mkdir()
    text.write_text("1,2\n3,four\n")
    day = tmp_path / "day"
    csv_import.import_file(raw, good, day)
    before = (day / "x.csv").read_text()
    with pytest.raises(FileExistsError, match="--force"):
        csv_import.import_file(raw, good, day)
    with pytest.raises(ValueError, match=r"bad/x\.csv:2: expected 2 fields \(a, b\), got 1"):
        csv_import.import_file(raw, bad, day, force=True)
    with pytest.raises(ValueError, match=r"text/x\.csv:2: column 'b' holds 'four', not a number"):
        csv_import.import_file(raw, text, day, force=True)
    assert (day / "x.csv").read_text() == before  # the day's good file is intact, no partial file is left
    assert sorted(p.name for p in day.iterdir()) == ["x.csv"]
    with pytest.raises(ValueError, match="several files would be written"):
        csv_import.import_day(raw, [good, tmp_path / "x.data"], day)
    # a day is all or nothing: the second file failing takes the first one back out
    other = tmp_path / "other.csv"
    other.write_text("5,6\n")
    with pytest.raises(ValueError, match=r"bad/x\.csv:2"):
        csv_import.import_day(raw, [other, bad], tmp_path / "day2")
    assert list((tmp_path / "day2").iterdir()) == []
    with pytest.raises(ValueError, match="would not match data.span_pattern's file part"):
        csv_import.import_file(raw, good, tmp_path / "day3", file_pattern="part-*.csv")


def _config(tmp_path, raw, features=None):
    return config_lib.from_dict({
        "data": {"root": str(tmp_path / "data"), "raw": raw},
        "features": features or [{"name": "age", "kind": "numeric", "dtype": "int"}],
        "tasks": [{"name": "rich", "label": "rich"}]}, source="test.yaml")


def test_the_configuration_refuses_a_label_source_as_a_feature_and_unclear_rules(tmp_path):
    derived = [{"name": "rich", "column": "income", "equals": ">50K"}]
    cfg = _config(tmp_path, {"columns": ["age", "income"], "derived": derived})
    assert cfg.data.raw.dropped == ["income"]
    with pytest.raises(config_lib.ConfigError, match=r"\['income'\] are dropped on import"):
        _config(tmp_path, {"columns": ["age", "income"], "derived": derived},
                features=[{"name": "income", "kind": "categorical"}])
    with pytest.raises(config_lib.ConfigError, match="exactly one of equals, one_of, above"):
        _config(tmp_path, {"derived": [{"name": "rich", "column": "income", "equals": "x", "above": 1}]})
    with pytest.raises(config_lib.ConfigError, match="not in data.raw.columns"):
        _config(tmp_path, {"columns": ["age"], "derived": derived})
    with pytest.raises(config_lib.ConfigError, match=r"unknown key\(s\) \['header'\]"):
        _config(tmp_path, {"header": False})
    with pytest.raises(config_lib.ConfigError, match="one_of must be a non-empty list"):
        _config(tmp_path, {"derived": [{"name": "rich", "column": "income", "one_of": ">50K"}]})
    with pytest.raises(config_lib.ConfigError, match="data.raw.drop must be a list"):
        _config(tmp_path, {"drop": "income"})
    with pytest.raises(config_lib.ConfigError, match="above must be a number"):
        _config(tmp_path, {"derived": [{"name": "rich", "column": "income", "above": "50"}]})
    with pytest.raises(config_lib.ConfigError, match="delimiter must be one character"):
        _config(tmp_path, {"delimiter": "\\t"})


def test_mtrank_import_writes_the_day_folder_of_the_configuration(tmp_path, capsys):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "data:\n  root: data\n  raw: {columns: [age, income], derived: [{name: rich, column: income, equals: yes}]}\n"
        "features: [{name: age, kind: numeric, dtype: int}]\ntasks: [{name: rich, label: rich}]\n")
    src = tmp_path / "people.txt"
    src.write_text("30, yes\n40, no\n")
    assert cli.main(["import", "--config", str(cfg_path), "--day", "2026-03-04", str(src)]) == 2
    assert "quote the value(s)" in capsys.readouterr().err  # YAML's `yes` is True, which no CSV field equals
    cfg_path.write_text(cfg_path.read_text().replace("equals: yes", 'equals: "yes"'))
    assert cli.main(["import", "--config", str(cfg_path), "--day", "2026-03-04", str(src)]) == 0
    assert _rows(tmp_path / "data" / "2026-03-04" / "people.csv") == [["age", "rich"], ["30", "1"], ["40", "0"]]
    assert "2 rows" in capsys.readouterr().out
    assert cli.main(["import", "--config", str(cfg_path), "--day", "2026-03-04", str(src)]) == 2
    assert "already imported; pass --force" in capsys.readouterr().err
