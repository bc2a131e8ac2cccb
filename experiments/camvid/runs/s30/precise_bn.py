"""Session 30: does a checkpoint's BatchNorm statistics' noise move its held-out score? A run's running statistics
are an exponential average (momentum 0.1) over its last few dozen training batches; this re-estimates them as the
plain average over BATCHES training batches of the run's own data and augmentation, in bf16 autocast as trained,
with the weights unchanged, and writes the checkpoint with them for seglight.evaluate.
Usage: python precise_bn.py RUN_DIR OUT.ckpt [BATCHES]   (run from the repository root: the data paths)"""

import sys
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from seglight.model.checkpoint import load_checkpoint, load_module


def main(run_dir: Path, out: Path, batches: int = 100) -> None:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    if not Path(cfg.data.root).is_dir():  # recorded from a worktree since removed
        cfg.data.root = str(Path("../shared/camvid").resolve())
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    module = load_module(ckpt_path)  # eval mode
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    seen, epoch = 0, 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        while seen < batches:
            dm.set_epoch(epoch)
            for batch in dm.train_dataloader():
                module(batch["image"])
                seen += 1
                if seen == batches:
                    break
            epoch += 1
    print(f"{len(norms)} BatchNorm layers re-estimated over {seen} batches of {dm.batch_size}")
    ckpt = load_checkpoint(ckpt_path)
    state = module.state_dict()
    ckpt["state_dict"] = {k: state[k] for k in ckpt["state_dict"]}
    torch.save(ckpt, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *(int(a) for a in sys.argv[3:4]))
