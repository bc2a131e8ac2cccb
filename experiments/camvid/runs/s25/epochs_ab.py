"""Session 25: wall time per epoch of the real preset (train split, no validation), from a given tree's seglight.

python epochs_ab.py TREE EPOCHS
"""

import json
import sys
import tempfile
import time

tree = sys.argv[1]
sys.path.insert(0, tree)
import pytorch_lightning as pl  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

import seglight  # noqa: E402
from seglight.config import compose_config  # noqa: E402
from seglight.training.fit import build_module, build_trainer  # noqa: E402


class EpochClock(pl.Callback):
    """The wall clock at each epoch's start and at the end of training."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_epoch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        self.starts.append(time.perf_counter())


work = tempfile.mkdtemp()
cfg = compose_config(
    [
        "experiment=camvid",
        "data.root=/work/shared/camvid",
        "logger=csv",
        f"run_dir={work}",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "trainer.check_val_every_n_epoch=1000",
        f"trainer.max_epochs={sys.argv[2]}",
        "callbacks.time_budget.budget=null",
    ]
)
dm = instantiate(cfg.data, _convert_="all")
dm.prepare_data()
dm.setup("fit")
clock = EpochClock()
trainer = build_trainer(cfg, extra_callbacks=[clock])
trainer.fit(build_module(cfg, dm), datamodule=dm)
epochs = [b - a for a, b in zip(clock.starts, clock.starts[1:])]
print(json.dumps({"tree": tree, "seglight": seglight.__file__, "epochs_s": [round(e, 2) for e in epochs]}))
