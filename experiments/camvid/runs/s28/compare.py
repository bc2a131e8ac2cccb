"""Session 28: session 25's comparison of every run per fold, with the RegNet preset at main's faster step
(sessions 25-27) as one more run of the RegNet arm (seed 42: folds 0-1 from session 27's runs/s27/folds.sh, folds 2-3
from chain.sh here), and the preset with data.photometric=strong on fold 2 (photometric.sh here) beside it.
Usage: python compare.py > compare.md"""

import importlib.util
from pathlib import Path

HERE = Path(__file__).parent

# session 25's compare.py: runs() and s24 (main, FOLDS, s24.s23.s22.miou)
_spec = importlib.util.spec_from_file_location("s25_compare", HERE.parent / "s25" / "compare.py")
s25 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s25)
s24 = s25.s24
miou = s24.s23.s22.miou

MAIN_STEP = "regx4 s42 (CPU, main's step)"
PHOTO = "photometric=strong s42 (CPU, main's step)"


def runs(kind: str) -> dict[str, list[float | None]]:
    """Session 25's runs, the RegNet preset at main's step on every fold and the photometric variant on fold 2."""
    out = s25.runs(kind)
    session = ["s27", "s27", "s28", "s28"]  # the session that ran each fold
    out[MAIN_STEP] = [miou(HERE.parent / s / f"eval_full_regx4_{s}_{kind}_f{f}.json") for f, s in enumerate(session)]
    out[PHOTO] = [miou(HERE / f"eval_full_regx4_photo_s28_{kind}_f{f}.json") if f == 2 else None for f in s24.FOLDS]
    return out


if __name__ == "__main__":
    s24.main(runs)
    print("\n### data.photometric=strong against the preset, seed 42 at main's step, the same fold\n")
    for kind in s24.s23.s22.KINDS:
        rows = runs(kind)
        print(f"- {kind}: {s24.s23.paired(rows[PHOTO], rows[MAIN_STEP])}")
