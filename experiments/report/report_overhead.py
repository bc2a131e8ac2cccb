"""What report.html costs evaluate: evaluate with report=false and report=true, alternating, on the same
checkpoint and the configured split's images (not a checkpoint's recorded split); prints each run's seconds,
the medians and their ratio, and writes JSON.

    python experiments/report/report_overhead.py CKPT [--data camvid] [--split val] [--repeats 2] [--out FILE]

Alternating runs share whatever else loads the machine, so the ratio is fair even when the absolute times are
not. The report's extra work: softmax probabilities (calibration), the bootstrap, thumbnails and figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from hydra.utils import instantiate

from seglight.config import compose_config
from seglight.inference.evaluation import evaluate
from seglight.inference.predictor import Predictor
from seglight.util.hardware import cpu_flags
from seglight.util.values import plain


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ckpt")
    parser.add_argument("--data", default="camvid")
    parser.add_argument("--split", default="val")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = plain(compose_config([f"data={args.data}"]).data)
    dataset = instantiate(data, _convert_="all").raw_dataset(args.split)  # the configured split, as given
    predictor = Predictor.load(args.ckpt)
    seconds: dict[str, list[float]] = {"report=false": [], "report=true": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for report in (False, True):
                t = time.perf_counter()
                result = evaluate(predictor, dataset, Path(tmp) / f"{r}{report}", report=report)
                seconds[f"report={str(report).lower()}"].append(time.perf_counter() - t)
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    out = {
        "ckpt": args.ckpt,
        "data": args.data,
        "split": args.split,
        "images": len(dataset),
        "precision": predictor.precision,
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512_bf16", "amx_bf16"}),
        "seconds": seconds,
        "median_seconds": medians,
        "report_overhead": medians["report=true"] / medians["report=false"] - 1,
        "mIoU": result["mIoU"],
        "mIoU_ci": result.get("mIoU_ci"),
    }
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
