"""The issue's preset against the final one at the full 42 minutes on all 4 unpurged folds, seed 42: fold 1 from
session 18, fold 0 and fold 2's issue's arm from session 19, fold 2's final arm and fold 3 from session 20. Next to
it the same folds and seed at 10 minutes of fit (session 13). Prints the per-fold figures, mean +- std over folds,
and the paired differences. Usage: python folds42.py > folds42.md"""

import json
import statistics
from pathlib import Path

from omegaconf import OmegaConf

RUNS = Path(__file__).parent.parent
CLASSES = OmegaConf.load(RUNS.parents[2] / "conf/data/camvid.yaml").class_names
ARMS = {"issue's": "old_plain", "issue's + TTA": "old_tta3", "final": "new_plain", "final + TTA": "new_tta3"}
PAIRS = {
    "final vs issue's (training)": ("issue's", "final"),
    "final + TTA vs issue's (the recipe)": ("issue's", "final + TTA"),
    "both with TTA": ("issue's + TTA", "final + TTA"),
}
FOLDS = range(4)


def session(arm: str, fold: int) -> str:
    """The session folder whose eval JSON holds this arm and fold at 42 minutes."""
    if fold == 1:
        return "s18"
    if fold == 0 or (fold == 2 and arm.startswith("old")):
        return "s19"
    return "s20"


def scores(name: str) -> dict[str, float]:
    """mIoU and the per-class IoU (keys ``iou/<class>``) of one evaluate metrics.json."""
    metrics = json.loads((RUNS / name).read_text())
    return {k: float(v) for k, v in metrics.items() if k == "mIoU" or k.startswith("iou/")}


def main() -> None:
    full = {(a, f): scores(f"{session(k, f)}/eval_full_{k}_f{f}.json") for a, k in ARMS.items() for f in FOLDS}
    long = {key: s["mIoU"] for key, s in full.items()}
    short = {(a, f): scores(f"s13/eval_bud_{k}_f{f}.json")["mIoU"] for a, k in ARMS.items() for f in FOLDS}

    folds = " | ".join(f"fold {f}" for f in FOLDS)
    print(f"| arm, 42 minutes | {folds} | mean +- std over folds | at 10 minutes |")
    print("|---" * 7 + "|")
    for a in ARMS:
        v, s = [long[a, f] for f in FOLDS], [short[a, f] for f in FOLDS]
        cells = " | ".join(f"{x:.4f}" for x in v)
        print(
            f"| {a} | {cells} | {statistics.fmean(v):.4f} +- {statistics.stdev(v):.4f} "
            f"| {statistics.fmean(s):.4f} +- {statistics.stdev(s):.4f} |"
        )
    print()
    print("| paired difference | length | " + " | ".join(f"fold {f}" for f in FOLDS) + " | mean +- std | above 0 |")
    print("|---" * 8 + "|")
    for name, (a, b) in PAIRS.items():
        for length, m in (("42 minutes", long), ("10 minutes", short)):
            d = [m[b, f] - m[a, f] for f in FOLDS]
            cells = " | ".join(f"{x:+.4f}" for x in d)
            print(
                f"| {name} | {length} | {cells} | {statistics.fmean(d):+.4f} +- {statistics.stdev(d):.4f} "
                f"| {sum(x > 0 for x in d)}/4 |"
            )
    print()
    print("| class, 42 minutes, mean of 4 folds | " + " | ".join(ARMS) + " | final + TTA - issue's |")
    print("|---" * (len(ARMS) + 2) + "|")
    for key in [f"iou/{c}" for c in CLASSES] + ["mIoU"]:
        means = {a: statistics.fmean(full[a, f][key] for f in FOLDS) for a in ARMS}
        gain = means["final + TTA"] - means["issue's"]
        cells = " | ".join(f"{means[a]:.3f}" for a in ARMS)
        print(f"| {key.removeprefix('iou/')} | {cells} | {gain:+.3f} |")


if __name__ == "__main__":
    main()
