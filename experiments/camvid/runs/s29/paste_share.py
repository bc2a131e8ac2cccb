"""Session 29: the pixel share of each class in 12 batches of the CamVid preset's training crops (fold 3), as loaded
and after copy-paste of the thin and rare classes at p=0.5 (the figures in LOG.md).

    python experiments/camvid/runs/s29/paste_share.py
"""

import torch
from hydra.utils import instantiate

from seglight.config import compose_config
from seglight.data.mixing import paste_classes

CLASSES = ["Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist"]
cfg = compose_config(["experiment=camvid", "data.folds=4", "data.fold=3", "data.purge_frames=0", "data.num_workers=0"])
dm = instantiate(cfg.data, _convert_="all")
dm.setup("fit")
names = list(cfg.data.class_names)
keep = [names.index(c) for c in CLASSES]
generator = torch.Generator().manual_seed(0)
before, after = torch.zeros(len(names)), torch.zeros(len(names))
batches = iter(dm.train_dataloader())
for _ in range(12):
    batch = next(batches)
    _, pasted, _ = paste_classes(batch["image"], batch["mask"], keep, 0.5, generator)
    for count, mask in ((before, batch["mask"]), (after, pasted)):
        labelled = mask[mask < len(names)]  # void (ignore_index) left out
        count += torch.bincount(labelled, minlength=len(names)).float()
before, after = before / before.sum(), after / after.sum()
for i, name in enumerate(names):
    print(f"{name:11s} {before[i]:.4f} -> {after[i]:.4f}  x{after[i] / before[i]:.2f}")
