"""Session 24: three runs of the RegNet preset and two of the issue's preset on each of the 4 unpurged folds, at the
full 42 minutes' epochs, last.ckpt scored on each fold's held-out images.
- session 23's arms (compare.py there): the issue's preset seeds 42 (CPU) and 1 (H200); RegNet seeds 42 and 1 (CPU);
- RegNet seed 1 on fold 3: this CPU, its own 42-minute budget (chain.sh here -> runs/s21/folds.sh);
- RegNet seed 2 on folds 0-3: the lent H200 at the epochs its seed-42 CPU runs reached (runs/s23/gpu_folds.sh with
  NEW_JOBS="2:0 2:1 2:2 2:3" WORKERS=3 NO_TESTS=1; JPEG-encoded images, as session 23's GPU runs).
Each arm is summarised per fold by the mean of its runs, and the arms are compared fold by fold.
Usage: python compare.py > compare.md; python compare.py --plot runs.png draws every run per fold instead."""

import importlib.util
import statistics
import sys
from pathlib import Path
from typing import Callable

HERE = Path(__file__).parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# session 23's compare.py: arms() (its four runs per fold), paired(), print_table(), spread(), and session 22's module
# as s23.s22 (miou, KINDS)
s23 = _load("s23_compare", HERE.parent / "s23" / "compare.py")
FOLDS = s23.FOLDS


def runs(kind: str) -> dict[str, list[float | None]]:
    """Every run's mIoU per fold, None where it has not run."""
    out = s23.arms(kind)
    s1_f3 = s23.s22.miou(HERE / f"eval_full_regx4_s1_{kind}_f3.json")
    out["regx4 s1 (CPU)"] = [s1_f3 if f == 3 else x for f, x in enumerate(out["regx4 s1 (CPU)"])]
    out["regx4 s2 (GPU)"] = [
        s23.s22.miou(HERE / "gpu" / "eval" / f"eval_new_s2_f{f}_{kind}" / "metrics.json") for f in FOLDS
    ]
    return out


def arm_runs(rows: dict[str, list[float | None]], prefix: str) -> list[list[float]]:
    """Per fold, the scores of every run whose name starts with prefix."""
    return [[v[f] for name, v in rows.items() if name.startswith(prefix) and v[f] is not None] for f in FOLDS]


def main(runs_of: Callable[[str], dict[str, list[float | None]]] = runs) -> None:
    """The comparison as markdown, of the runs ``runs_of(kind)`` gives (session 25 passes its own, with one more)."""
    by_kind = {kind: runs_of(kind) for kind in s23.s22.KINDS}
    for kind, rows in by_kind.items():
        print(f"### {kind}\n")
        s23.print_table(rows, first="run")
        issue, reg = arm_runs(rows, "issue's"), arm_runs(rows, "regx4")
        for label, arm in (("issue's preset", issue), ("regx4", reg)):
            means = [statistics.fmean(x) for x in arm]
            print(
                f"| **{label}, mean of its runs** | "
                + " | ".join(f"{m:.4f} ({len(x)} runs, std {statistics.stdev(x):.4f})" for m, x in zip(means, arm))
                + f" | **{s23.spread(means)}** |"
            )
        diff = [statistics.fmean(r) - statistics.fmean(i) for r, i in zip(reg, issue)]
        print(
            "\nRegNet - the issue's preset, the mean of each arm's runs per fold: "
            + ", ".join(f"f{f} {d:+.4f}" for f, d in enumerate(diff))
            + f"; mean {statistics.fmean(diff):+.4f} +- {statistics.stdev(diff):.4f} over {len(diff)}, "
            + f"{sum(d > 0 for d in diff)}/{len(diff)} above 0"
        )
        print("\nEach RegNet run against the mean of the issue's runs on the same fold:")
        issue_mean = [statistics.fmean(x) for x in issue]
        for name, v in rows.items():
            if name.startswith("regx4"):
                print(f"- {name}: {s23.paired(v, issue_mean)}")
        print("\nRun to run on one fold (std of the runs, then their mean over the folds):")
        for label, arm in (("issue's preset", issue), ("regx4", reg)):
            stds = [statistics.stdev(x) for x in arm]
            print(
                f"- {label}: "
                + ", ".join(f"f{f} {s:.4f}" for f, s in enumerate(stds))
                + f"; mean {statistics.fmean(stds):.4f}"
            )
        print()
    reg_tta = [statistics.fmean(x) for x in arm_runs(by_kind["tta3"], "regx4")]
    issue_plain = [statistics.fmean(x) for x in arm_runs(by_kind["plain"], "issue's")]
    print("### the recipe: RegNet + TTA against the issue's preset plain (the mean of each arm's runs per fold)\n")
    print(f"- {s23.paired(reg_tta, issue_plain)}")


def plot(path: str) -> None:
    """Every run's score per fold, plain and with TTA: the gain beside the spread between folds and between runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, s23.s22.KINDS):
        rows = runs(kind)
        for name, v in rows.items():
            issue = name.startswith("issue's")
            xs = [f + (-0.12 if issue else 0.12) for f in FOLDS if v[f] is not None]
            marker = "o" if "(CPU)" in name else "^"
            ax.scatter(xs, [x for x in v if x is not None], marker=marker, color="tab:grey" if issue else "tab:blue")
        for prefix, dx, color in (("issue's", -0.12, "tab:grey"), ("regx4", 0.12, "tab:blue")):
            means = [statistics.fmean(x) for x in arm_runs(rows, prefix)]
            ax.hlines(means, [f + dx - 0.1 for f in FOLDS], [f + dx + 0.1 for f in FOLDS], color=color)
        ax.set_xticks(list(FOLDS), [f"fold {f}" for f in FOLDS])
        ax.set_title(f"{kind}: last.ckpt on each fold's held-out images")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("mIoU")
    handles = [
        plt.Line2D([], [], color="tab:grey", marker="o", ls="", label="issue's preset (2 runs: CPU o, GPU ^)"),
        plt.Line2D([], [], color="tab:blue", marker="o", ls="", label="RegNet preset (3 runs: CPU o, GPU ^)"),
        plt.Line2D([], [], color="black", label="mean of the arm's runs"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--plot"]:
        plot(sys.argv[2])
    else:
        main()
