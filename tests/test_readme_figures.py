"""The README's benchmark table is the one bench/summary.py writes from bench/results: a figure typed or
left stale by hand fails here (run `python bench/summary.py` after a benchmark)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _summary():
    spec = importlib.util.spec_from_file_location("bench_summary", ROOT / "bench" / "summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_headline_table_is_generated_from_bench_results():
    summary = _summary()
    assert summary.readme_block((ROOT / "README.md").read_text()) == summary.headline()


def test_write_readme_replaces_only_the_block(tmp_path):
    summary = _summary()
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{summary.BEGIN}\n| stale |\n{summary.END}\nafter\n")
    summary.write_readme("| fresh |\n", readme)
    assert readme.read_text() == f"before\n{summary.BEGIN}\n| fresh |\n{summary.END}\nafter\n"
