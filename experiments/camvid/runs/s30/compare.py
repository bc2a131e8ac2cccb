"""Session 30: AdamW weight decay 0.05 (the preset: 1e-4) on all four unpurged folds at the full 42 minutes, seed 42
(folds 2-3: session 29's wd.sh and wd_f2.sh; folds 0-1: wd.sh here), beside session 28's table of every run, and
on val beside the preset's three seeds. Usage: python compare.py > compare.md"""

import importlib.util
import statistics
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent

# session 28's compare.py: runs() (every run per fold, the preset at main's step as MAIN_STEP) and s24 (FOLDS, main,
# arm_runs, and session 23's paired() and spread() as s24.s23)
_spec = importlib.util.spec_from_file_location("s28_compare", RUNS / "s28" / "compare.py")
s28 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s28)
s24, miou = s28.s24, s28.miou
s23 = s24.s23

WD = "weight_decay=0.05 s42 (CPU, main's step)"
SESSION = ["s30", "s30", "s29", "s29"]  # the session that ran each fold
VAL = {
    "preset s42 (s22)": RUNS / "s22" / "eval_val_regx4_KIND.json",
    "preset s1 (s24)": RUNS / "s24" / "eval_val_regx4_s1_KIND.json",
    "preset s2 (s25)": RUNS / "s25" / "eval_val_regx4_s2_KIND.json",
    "weight_decay=0.05 s42 (s30)": HERE / "eval_val_regx4_wd05_KIND.json",
}


def runs(kind: str) -> dict[str, list[float | None]]:
    """Session 28's runs and weight decay 0.05 on every fold it has run on."""
    out = s28.runs(kind)
    out[WD] = [miou(RUNS / s / f"eval_full_regx4_wd05_{kind}_f{f}.json") for f, s in enumerate(SESSION)]
    return out


def versus(kind: str) -> None:
    rows = runs(kind)
    issue = [statistics.fmean(x) for x in s24.arm_runs(rows, "issue's")]
    others = [statistics.fmean(x) for x in s24.arm_runs({k: v for k, v in rows.items() if k != WD}, "regx4")]
    print(f"- {kind}, against the preset seed 42 at main's step: {s23.paired(rows[WD], rows[s28.MAIN_STEP])}")
    print(f"- {kind}, against the mean of RegNet's other runs: {s23.paired(rows[WD], others)}")
    print(f"- {kind}, against the issue's preset (mean of its runs): {s23.paired(rows[WD], issue)}")


if __name__ == "__main__":
    s24.main(runs)
    print("\n### weight_decay=0.05, seed 42 at main's step\n")
    for kind in s23.s22.KINDS:
        versus(kind)
    tta = runs("tta3")[WD]
    issue_plain = [statistics.fmean(x) for x in s24.arm_runs(runs("plain"), "issue's")]
    print(f"- the recipe (weight decay 0.05 + TTA) against the issue's preset plain: {s23.paired(tta, issue_plain)}")
    print("\n### Val (101 images, full size, void ignored, last.ckpt)\n\n| run | plain | TTA |\n|---|---|---|")
    for name, pattern in VAL.items():
        got = [miou(Path(str(pattern).replace("KIND", k))) for k in s23.s22.KINDS]
        print(f"| {name} | " + " | ".join("" if x is None else f"{x:.4f}" for x in got) + " |")
