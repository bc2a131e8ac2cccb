"""Both seeds of the equal-wall-time comparison (issue's preset vs the final one, 10 minutes of fit per fold):
seed 42 (session 13, all folds), seed 1 (fold 0: session 13; folds 1-3: session 15), from the eval JSONs of
runs/s13 and runs/s15. Prints per-fold and per-seed paired differences, the seed noise and the seed-averaged
fold means. Usage: python two_seeds.py > two_seeds.md"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent
ARMS = {
    "issue's": "old_{s}plain",
    "issue's + TTA": "old_{s}tta3",
    "final": "new_{s}plain",
    "final + TTA": "new_{s}tta3",
}


def miou(arm: str, seed: str, fold: int) -> float:
    tag = "" if seed == "42" else "s1_"
    folder = HERE.parent / ("s15" if seed == "1" and fold > 0 else "s13")
    return json.loads((folder / f"eval_bud_{ARMS[arm].format(s=tag)}_f{fold}.json").read_text())["mIoU"]


seeds, folds = ("42", "1"), range(4)
m = {(a, s, f): miou(a, s, f) for a in ARMS for s in seeds for f in folds}
pairs = {
    "final + TTA vs issue's": ("issue's", "final + TTA"),
    "final vs issue's (training)": ("issue's", "final"),
    "both with TTA": ("issue's + TTA", "final + TTA"),
}
print("| seed | fold | " + " | ".join(ARMS) + " | " + " | ".join(pairs) + " |")
print("|---" * (2 + len(ARMS) + len(pairs)) + "|")
for s in seeds:
    for f in folds:
        cells = [f"{m[a, s, f]:.4f}" for a in ARMS] + [f"{m[b, s, f] - m[a, s, f]:+.4f}" for a, b in pairs.values()]
        print(f"| {s} | {f} | " + " | ".join(cells) + " |")
print()
for name, (a, b) in pairs.items():
    d = {s: [m[b, s, f] - m[a, s, f] for f in folds] for s in seeds}
    every = d["42"] + d["1"]
    print(
        f"- {name}: seed 42 mean {statistics.fmean(d['42']):+.4f}, seed 1 mean {statistics.fmean(d['1']):+.4f}; "
        f"all 8 {statistics.fmean(every):+.4f} (min {min(every):+.4f}, {sum(x > 0 for x in every)}/8 above 0)"
    )
noise = [m[a, "1", f] - m[a, "42", f] for a in ("issue's", "final") for f in folds]
rms = statistics.fmean(x * x for x in noise) ** 0.5
print(
    "- seed 1 - seed 42, same recipe (issue's and final, plain; 8 values): "
    + ", ".join(f"{x:+.4f}" for x in noise)
    + f"; root mean square {rms:.4f}, so about {rms / 8**0.5:.4f} on a "
    "mean of 8 paired differences"
)
for a in ARMS:
    per_fold = [statistics.fmean(m[a, s, f] for s in seeds) for f in folds]
    print(f"- {a}, fold means of the two seeds: {statistics.fmean(per_fold):.4f} +- {statistics.stdev(per_fold):.4f}")
