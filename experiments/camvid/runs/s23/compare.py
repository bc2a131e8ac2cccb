"""Session 23: a second seed of both 42-minute presets beside session 18-22's seed 42, on the 4 unpurged folds,
last.ckpt scored on each fold's held-out images.
- the issue's preset, seed 1: on the lent H200 at its 80 epochs (runs/s23/gpu_folds.sh, JPEG-encoded images);
- the RegNet preset, seed 1: on the avx512_bf16 EPYC, its own 42-minute budget (runs/s21/folds.sh via chain.sh).
Folds a row lacks are left out of its paired lines; the row means cover different folds where a row lacks one, so
read the paired lines. Usage: python compare.py > compare.md"""

import importlib.util
import statistics
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# session 22's compare.py (the same file name as this one, so loaded by path): regx4_file() for the RegNet arm, seed
# 42, and session 21's lookups it re-exports: full(), miou(), KINDS
s22 = _load("s22_compare", RUNS / "s22" / "compare.py")
FOLDS = range(4)
GPU_EVAL = HERE / "gpu" / "eval"  # gpu_folds.sh's scores of the issue's preset, seed 1


def arms(kind: str) -> dict[str, list[float | None]]:
    """Each arm's mIoU per fold, None where it has not run."""
    return {
        "issue's s42 (CPU)": [s22.full("old", f, kind) for f in FOLDS],
        "issue's s1 (GPU)": [s22.miou(GPU_EVAL / f"eval_old_s1_f{f}_{kind}" / "metrics.json") for f in FOLDS],
        "regx4 s42 (CPU)": [s22.miou(s22.regx4_file(kind, f)) for f in FOLDS],
        "regx4 s1 (CPU)": [s22.miou(HERE / f"eval_full_regx4_s1_{kind}_f{f}.json") for f in FOLDS],
    }


def paired(a: list[float | None], b: list[float | None]) -> str:
    d = [x - y for x, y in zip(a, b) if None not in (x, y)]
    if not d:
        return "no fold has both"
    cells = ", ".join(f"f{f} {x - y:+.4f}" for f, (x, y) in enumerate(zip(a, b)) if None not in (x, y))
    std = f" +- {statistics.stdev(d):.4f}" if len(d) > 1 else ""
    return f"{cells}; mean {statistics.fmean(d):+.4f}{std} over {len(d)}, {sum(x > 0 for x in d)}/{len(d)} above 0"


def spread(values: list[float]) -> str:
    """'mean +- std', or '' for fewer than two values."""
    return f"{statistics.fmean(values):.4f} +- {statistics.stdev(values):.4f}" if len(values) > 1 else ""


def print_table(rows: dict[str, list[float | None]], first: str = "arm") -> None:
    """One markdown row per entry of rows: its score on each fold, then mean +- std over the folds it has."""
    print(f"| {first} | " + " | ".join(f"fold {f}" for f in FOLDS) + " | mean +- std over the folds the row has |")
    print("|---" * 6 + "|")
    for name, v in rows.items():
        got = [x for x in v if x is not None]
        print(f"| {name} | " + " | ".join("" if x is None else f"{x:.4f}" for x in v) + f" | {spread(got)} |")


def main() -> None:
    for kind in s22.KINDS:
        rows = arms(kind)
        print(f"### {kind}\n")
        print_table(rows)
        print()
        issue42, issue1, reg42, reg1 = rows.values()
        print("Run to run, the same recipe (seed, and for the issue's preset the machine and image encoding):")
        print(f"- issue's s1 (GPU) - issue's s42 (CPU): {paired(issue1, issue42)}")
        print(f"- regx4 s1 - regx4 s42: {paired(reg1, reg42)}")
        print("\nRegNet against the issue's preset:")
        for (na, a), (nb, b) in [
            (("s42", reg42), ("s42", issue42)),
            (("s42", reg42), ("s1", issue1)),
            (("s1", reg1), ("s42", issue42)),
            (("s1", reg1), ("s1", issue1)),
        ]:
            print(f"- regx4 {na} - issue's {nb}: {paired(a, b)}")
        both = {
            f: (r42 + r1) / 2 - (i42 + i1) / 2
            for f, (r42, r1, i42, i1) in enumerate(zip(reg42, reg1, issue42, issue1))
            if None not in (r42, r1, i42, i1)
        }
        if both:
            print(
                "- two runs of each arm, mean per fold, regx4 - issue's (folds with all four runs): "
                + ", ".join(f"f{f} {x:+.4f}" for f, x in both.items())
                + f"; mean {statistics.fmean(both.values()):+.4f} over {len(both)}"
            )
        print()


if __name__ == "__main__":
    main()
