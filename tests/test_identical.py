"""`make identical`'s comparison of two run folders: what counts as the same output."""

from __future__ import annotations

from pathlib import Path

from ka_ml.bench.identical import compare_files


def _run(root: Path, report: str, owner: str) -> Path:
    (root / "owners").mkdir(parents=True)
    (root / "report.html").write_text(report, encoding="utf-8")
    (root / "owners" / "alice.html").write_text(owner, encoding="utf-8")
    (root / "scores.parquet").write_bytes(b"compared elsewhere")
    return root


def test_text_outputs_must_match_byte_for_byte_except_the_copies_paths(tmp_path: Path) -> None:
    a = _run(tmp_path / "base" / "out", f"<p>{tmp_path}/base/x</p>", "same")
    b = _run(tmp_path / "head" / "out", f"<p>{tmp_path}/head/x</p>", "same")
    roots = (str(tmp_path / "base"), str(tmp_path / "head"))
    assert compare_files(a, b, roots) == []
    (b / "owners" / "alice.html").write_text("samf", encoding="utf-8")
    (b / "owners" / "bob.html").write_text("new", encoding="utf-8")
    diffs = compare_files(a, b, roots)
    assert diffs[0] == "owners/bob.html: only in one"
    assert diffs[1].startswith("owners/alice.html: differs at character 3")


def test_scores_csv_floats_may_differ_in_their_last_digits_but_nothing_else(
    tmp_path: Path,
) -> None:
    a = _run(tmp_path / "base" / "out", "r", "o")
    b = _run(tmp_path / "head" / "out", "r", "o")
    roots = (str(tmp_path / "base"), str(tmp_path / "head"))
    head = "account_id,churn_probability,reason_1,reason_1_value\n"
    (a / "scores.csv").write_text(head + "A1,0.0649656281245023,orders_90d,NA\n", "utf-8")
    (b / "scores.csv").write_text(head + "A1,0.06496562812450234,orders_90d,NA\n", "utf-8")
    assert compare_files(a, b, roots) == []  # 4e-17 apart: the same score
    (b / "scores.csv").write_text(head + "A1,0.0649656281255023,orders_90d,NA\n", "utf-8")
    assert compare_files(a, b, roots) == [
        "scores.csv: churn_probability: 1 rows differ (first: row 0: "
        "np.float64(0.0649656281245023) vs np.float64(0.0649656281255023))"
    ]
    (b / "scores.csv").write_text(head + "A1,0.0649656281245023,recency_days,NA\n", "utf-8")
    assert compare_files(a, b, roots)[0].startswith("scores.csv: reason_1: 1 rows differ")
