"""Session 22: RegNetX-400MF at the full 42 minutes on all 4 unpurged folds (folds 2-3 from session 21, folds 0-1
from this session) against the final preset and the issue's preset (sessions 18-20, seed 42), last.ckpt scored on
each fold's held-out images; then the per-class means over the folds and the val figures (101 images, full size).
"final" here is the resnet18 preset (session 20's final), which RegNet replaced in this session.
Usage: python compare.py > compare.md"""

import importlib.util
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent
sys.path.insert(0, str(RUNS / "s20"))
from folds42 import CLASSES, scores, session  # noqa: E402

# session 21's compare.py (the same file name as this one, so loaded by path): its lookups and table
_spec = importlib.util.spec_from_file_location("s21_compare", RUNS / "s21" / "compare.py")
s21 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s21)
KINDS, full, miou, table = s21.KINDS, s21.full, s21.miou, s21.table

FOLDS = range(4)


def regx4_file(kind: str, fold: int) -> Path:
    """The eval JSON of the RegNet arm at 42 minutes: folds 2-3 ran in session 21, folds 0-1 in this one."""
    return (RUNS / "s21" if fold >= 2 else HERE) / f"eval_full_regx4_{kind}_f{fold}.json"


def main() -> None:
    rows: dict[str, list[float | None]] = {}
    for kind in KINDS:
        rows[f"issue's {kind}"] = [full("old", f, kind) for f in FOLDS]
        rows[f"final {kind}"] = [full("new", f, kind) for f in FOLDS]
        rows[f"regx4 {kind}"] = [miou(regx4_file(kind, f)) for f in FOLDS]
    table(
        "The full 42 minutes (each preset's own budget), 4 folds", rows, ["final", "issue's", "issue's plain"], "regx4"
    )

    print("Std over folds of the paired differences (plain):")
    for other in ("final", "issue's"):
        d = [a - b for a, b in zip(rows["regx4 plain"], rows[f"{other} plain"]) if None not in (a, b)]
        if len(d) > 1:
            print(
                f"- regx4 - {other}: mean {statistics.fmean(d):+.4f} +- {statistics.stdev(d):.4f} over {len(d)} folds"
            )
    print()

    done = [f for f in FOLDS if regx4_file("plain", f).exists()]
    arms = {
        "issue's": lambda f: RUNS / session("old", f) / f"eval_full_old_plain_f{f}.json",
        "final": lambda f: RUNS / session("new", f) / f"eval_full_new_plain_f{f}.json",
        "regx4": lambda f: regx4_file("plain", f),
        "regx4 + TTA": lambda f: regx4_file("tta3", f),
    }
    per = {a: [scores(str(path(f).relative_to(RUNS))) for f in done] for a, path in arms.items()}
    print(f"### Per class, plain unless marked, mean over folds {', '.join(map(str, done))}\n")
    print("| class | " + " | ".join(arms) + " | regx4 - final |")
    print("|---" * (len(arms) + 2) + "|")
    for key in [f"iou/{c}" for c in CLASSES] + ["mIoU"]:
        means = {a: statistics.fmean(s[key] for s in per[a]) for a in arms}
        cells = " | ".join(f"{means[a]:.3f}" for a in arms)
        print(f"| {key.removeprefix('iou/')} | {cells} | {means['regx4'] - means['final']:+.3f} |")
    print()

    val = {k: miou(HERE / f"eval_val_regx4_{k}.json") for k in KINDS}
    if None not in val.values():
        print(f"### Val (101 images, full size, last.ckpt)\n\nregx4: {val['plain']:.4f} plain, {val['tta3']:.4f} TTA")
        print("(the resnet18 preset, session 12: 0.648 plain, 0.653 TTA)")


if __name__ == "__main__":
    main()
