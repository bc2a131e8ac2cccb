"""Session 25: session 24's comparison of every run per fold, with the RegNet preset's seed 3 on fold 3 added (the
faster dice_ce of a467320, this CPU, its own 42-minute budget: fold3.sh here -> runs/s21/folds.sh).
Usage: python compare.py > compare.md"""

import importlib.util
from pathlib import Path

HERE = Path(__file__).parent


# session 24's compare.py: runs(), main(), FOLDS, and session 23's and 22's modules (s24.s23, s24.s23.s22)
_spec = importlib.util.spec_from_file_location("s24_compare", HERE.parent / "s24" / "compare.py")
s24 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s24)


def runs(kind: str) -> dict[str, list[float | None]]:
    """Session 24's runs and this session's fold-3 run (None on the folds it did not run)."""
    out = s24.runs(kind)
    s3_f3 = s24.s23.s22.miou(HERE / f"eval_full_regx4_s3_{kind}_f3.json")
    out["regx4 s3 (CPU, faster loss)"] = [s3_f3 if f == 3 else None for f in s24.FOLDS]
    return out


if __name__ == "__main__":
    s24.main(runs)
