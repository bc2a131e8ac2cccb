"""Session 17's arms against the equal-wall-time proxy of sessions 13 and 15 (4 unpurged folds, 10 minutes of fit,
last.ckpt scored on each fold's held-out images): the issue's preset ("issue's") and the final preset ("final"), both
at seeds 42 and 1, against a session-17 arm (default: prog2, seed 42). Prints per-fold figures and paired differences.
Usage: python compare.py [arm ...] > compare.md   (an arm: the run-name prefix under runs/s17/eval)"""

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent


def old_arm(arm: str, seed: str, fold: int, kind: str) -> float:
    tag = "" if seed == "42" else "s1_"
    folder = RUNS / ("s15" if seed == "1" and fold > 0 else "s13")
    return json.loads((folder / f"eval_bud_{arm}_{tag}{kind}_f{fold}.json").read_text())["mIoU"]


def new_arm(name: str, fold: int, kind: str) -> float:
    return json.loads((HERE / f"eval_{name}_{kind}_f{fold}.json").read_text())["mIoU"]


folds = range(4)
arms = sys.argv[1:] or ["prog2"]
rows: dict[str, list[float]] = {}
for kind in ("plain", "tta3"):
    for seed in ("42", "1"):
        rows[f"issue's {seed} {kind}"] = [old_arm("old", seed, f, kind) for f in folds]
        rows[f"final {seed} {kind}"] = [old_arm("new", seed, f, kind) for f in folds]
    for arm in arms:
        rows[f"{arm} {kind}"] = [new_arm(arm, f, kind) for f in folds]

print("| arm, seed, scored | " + " | ".join(f"fold {f}" for f in folds) + " | mean +- std over folds |")
print("|---" * 6 + "|")
for name, v in rows.items():
    cells = " | ".join(f"{x:.4f}" for x in v)
    print(f"| {name} | {cells} | {statistics.fmean(v):.4f} +- {statistics.stdev(v):.4f} |")
print()
for arm in arms:
    for kind in ("plain", "tta3"):
        for base in ("final", "issue's"):
            for seed in ("42", "1"):
                other = f"{base} {seed} {kind if base == 'final' else 'plain'}"
                d = [a - b for a, b in zip(rows[f"{arm} {kind}"], rows[other])]
                print(
                    f"- {arm} {kind} - {other}: "
                    + ", ".join(f"{x:+.4f}" for x in d)
                    + f"; mean {statistics.fmean(d):+.4f}, {sum(x > 0 for x in d)}/4 above 0"
                )
