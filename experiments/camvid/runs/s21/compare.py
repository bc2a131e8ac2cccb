"""Session 21's RegNetX-400MF arms against the final preset and the issue's preset on the same 4 unpurged folds,
last.ckpt scored on each fold's held-out images. At 10 minutes of fit the baselines are sessions 13 and 15's arms
(seeds 42 and 1); at the full 42 minutes sessions 18-20's (seed 42; see runs/s20/folds42.py). Folds without a
RegNet arm yet are left out of the paired lines. Usage: python compare.py > compare.md"""

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent
sys.path.insert(0, str(RUNS / "s20"))
from folds42 import session  # noqa: E402  (which session holds an arm and fold at 42 minutes)

KINDS = ("plain", "tta3")


def miou(path: Path) -> float | None:
    return json.loads(path.read_text())["mIoU"] if path.exists() else None


def short(arm: str, seed: str, fold: int, kind: str) -> float | None:
    """A session 13/15 arm ('old' = the issue's preset, 'new' = the final one) at 10 minutes."""
    tag, folder = ("", "s13") if seed == "42" else ("s1_", "s15" if fold else "s13")
    return miou(RUNS / folder / f"eval_bud_{arm}_{tag}{kind}_f{fold}.json")


def full(arm: str, fold: int, kind: str) -> float | None:
    """A session 18-20 arm at the full 42 minutes, seed 42."""
    return miou(RUNS / session(arm, fold) / f"eval_full_{arm}_{kind}_f{fold}.json")


def table(title: str, rows: dict[str, list[float | None]], base: list[str], arm: str) -> None:
    print(f"### {title}\n")
    print("| arm | " + " | ".join(f"fold {f}" for f in range(4)) + " | mean +- std (over the folds the row has) |")
    print("|---" * 6 + "|")
    for name, v in rows.items():
        cells = " | ".join("" if x is None else f"{x:.4f}" for x in v)
        got = [x for x in v if x is not None]
        spread = f"{statistics.fmean(got):.4f} +- {statistics.stdev(got):.4f}" if len(got) > 1 else ""
        print(f"| {name} | {cells} | {spread} |")
    print()
    for kind in KINDS:
        for other_kind in dict.fromkeys(other if other in rows else f"{other} {kind}" for other in base):
            pairs = [(a, b) for a, b in zip(rows[f"{arm} {kind}"], rows[other_kind]) if None not in (a, b)]
            d = [a - b for a, b in pairs]
            if d:
                print(
                    f"- {arm} {kind} - {other_kind}: "
                    + ", ".join(f"{x:+.4f}" for x in d)
                    + f"; mean {statistics.fmean(d):+.4f}, {sum(x > 0 for x in d)}/{len(d)} above 0"
                )
    print()


def main() -> None:
    folds = range(4)
    rows10: dict[str, list[float | None]] = {}
    rows42: dict[str, list[float | None]] = {}
    for kind in KINDS:
        for seed in ("42", "1"):
            rows10[f"issue's s{seed} {kind}"] = [short("old", seed, f, kind) for f in folds]
            rows10[f"final s{seed} {kind}"] = [short("new", seed, f, kind) for f in folds]
        rows10[f"regx4 {kind}"] = [miou(HERE / f"eval_regx4_{kind}_f{f}.json") for f in folds]
        rows42[f"issue's {kind}"] = [full("old", f, kind) for f in folds]
        rows42[f"final {kind}"] = [full("new", f, kind) for f in folds]
        rows42[f"regx4 {kind}"] = [miou(HERE / f"eval_full_regx4_{kind}_f{f}.json") for f in folds]
    table("10 minutes of fit per fold", rows10, ["final s42", "final s1", "issue's s42 plain"], "regx4")
    table("The full 42 minutes (each preset's own budget)", rows42, ["final", "issue's", "issue's plain"], "regx4")


if __name__ == "__main__":
    main()
