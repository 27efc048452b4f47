"""The theory check: the literature's vanishing/exploding arithmetic, computed."""

import math
from pathlib import Path

from rnnbench.cli import main
from rnnbench.diagnostics.theory import Claim, product_row, theory_check, theory_text
from rnnbench.report import build_report


def test_theory_check_numbers() -> None:
    frame = theory_check().set_index("quantity")
    for factor, layers in ((0.25, 10), (0.2, 19), (2.5, 19), (1.1, 100)):
        value = frame.loc[f"{factor:g}^{layers}", "value"]
        assert math.isclose(value, factor**layers, rel_tol=1e-6)
    assert math.isclose(frame.loc["0.2^19", "value"], 5.2e-14, rel_tol=0.02)
    assert math.isclose(frame.loc["1.1^100", "value"], 13_780, rel_tol=0.001)
    assert frame.loc["sigmoid scale 1: per-layer factor r", "value"] < 1
    assert frame.loc["sigmoid scale 6: per-layer factor r", "value"] > 1
    # every claim is borne out; each row names the paper it checks
    verdicts = frame["verdict"].to_dict()
    assert verdicts["0.25^10"] == verdicts["2.5^19"] == "agrees"
    assert verdicts["0.2^19"] == verdicts["1.1^100"] == "agrees"
    assert frame.loc["0.25^10", "source"] == "Hochreiter 1991; Glorot & Bengio 2010"
    assert "Pascanu" in frame.loc["2.5^19", "source"]
    assert verdicts["sigmoid scale 1: per-layer factor r"] == "agrees"
    text = theory_text()
    assert "0.25^10" in text and "sigmoid scale 6" in text


def test_a_claim_the_numbers_contradict_is_flagged() -> None:
    row = product_row(Claim(0.9, 30, "explodes", "a factor of 0.9 explodes", "nobody"))
    assert row["verdict"].startswith("disagrees: vanishes")


def test_the_default_report_leaves_the_theory_out_and_theory_adds_it(
    tmp_path: Path, write_sweep, capsys
) -> None:
    store = tmp_path / "r.db"
    assert main(["run", str(write_sweep()), "--store", str(store), "--workers", "0",
                 "--no-progress"]) == 0
    plain = build_report([store], tmp_path / "plain").read_text()
    assert "id='theory'" not in plain and "Theory check" not in plain
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "with"),
                 "--theory"]) == 0
    text = (tmp_path / "with" / "index.html").read_text()
    assert "id='theory'" in text and "Hochreiter 1991" in text
    assert (tmp_path / "with" / "tables" / "theory.csv").is_file()
