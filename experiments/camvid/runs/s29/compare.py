"""Session 29: each candidate against the preset as on main (seed 42, the full 42 minutes, the same unpurged fold;
sessions 27-28's runs), plain and with TTA, mIoU and per class. Usage: python compare.py > compare.md"""

import json
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent
PRESET = {f: RUNS / s / f"eval_full_regx4_{s}_KIND_f{f}.json" for f, s in enumerate(["s27", "s27", "s28", "s28"])}
CANDIDATES = {  # name -> eval file pattern (KIND, FOLD)
    "weight_decay=0.05": HERE / "eval_full_regx4_wd05_KIND_fFOLD.json",
    "copy_paste p=0.5": HERE / "eval_full_regx4_paste_KIND_fFOLD.json",
}


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    for name, pattern in CANDIDATES.items():
        for fold, preset_pattern in PRESET.items():
            for kind in ("plain", "tta3"):
                cand = load(Path(str(pattern).replace("KIND", kind).replace("FOLD", str(fold))))
                base = load(Path(str(preset_pattern).replace("KIND", kind)))
                if cand is None or base is None:
                    continue
                diff = cand["mIoU"] - base["mIoU"]
                print(
                    f"\n### {name}, fold {fold}, {kind}: {cand['mIoU']:.4f} vs the preset's {base['mIoU']:.4f} "
                    f"({diff:+.4f}); interval by blocks of the candidate {cand['mIoU_ci']}\n"
                )
                print("| class | candidate | preset | diff |\n|---|---|---|---|")
                for key in sorted(k for k in cand if k.startswith("iou/")):
                    print(f"| {key[4:]} | {cand[key]:.3f} | {base[key]:.3f} | {cand[key] - base[key]:+.3f} |")


if __name__ == "__main__":
    main()
