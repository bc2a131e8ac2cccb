"""One batch of the CamVid preset's training crops (fold 3) before and after copy-paste of the thin and rare
classes at p=1: the picture in experiments/camvid/README.md.

    python experiments/camvid/runs/s29/paste_figure.py [out.png]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from seglight.config import compose_config  # noqa: E402
from seglight.data.mixing import paste_classes  # noqa: E402
from seglight.report.figures import overlay  # noqa: E402

CLASSES = ["Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist"]
cfg = compose_config(["experiment=camvid", "data.folds=4", "data.fold=3", "data.purge_frames=0", "data.num_workers=0"])
dm = instantiate(cfg.data, _convert_="all")
dm.setup("fit")
batch = next(iter(dm.train_dataloader()))
keep = [dm.palette.class_index(c) for c in CLASSES]
image, mask, source = paste_classes(batch["image"], batch["mask"], keep, 1.0, torch.Generator().manual_seed(1))
mean, std = torch.tensor(dm.mean)[:, None, None], torch.tensor(dm.std)[:, None, None]


def picture(x: torch.Tensor) -> np.ndarray:
    """(3,H,W) normalised -> (H,W,3) uint8."""
    return ((x * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


rows = 4
fig, axes = plt.subplots(rows, 3, figsize=(9, 2.6 * rows))
for r in range(rows):
    after = f"after: pixels from crop {int(source[r])}" if source[r] >= 0 else "after: nothing to paste"
    panels = [
        (picture(batch["image"][r]), "as loaded"),
        (picture(image[r]), after),
        (overlay(picture(image[r]), mask[r].numpy(), dm.palette), "labels after"),
    ]
    for ax, (pic, title) in zip(axes[r], panels):
        ax.imshow(pic)
        ax.set_title(f"crop {r}: {title}" if ax is axes[r][0] else title, fontsize=9)
        ax.axis("off")
fig.suptitle(f"callbacks.copy_paste.p=1 classes={CLASSES}", fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[1] if len(sys.argv) > 1 else "copy_paste.jpg", dpi=80, pil_kwargs={"quality": 85})
