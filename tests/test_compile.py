"""model.compile=true trains through torch.compile and writes checkpoints that load without it."""

import pytest
import torch

from seglight.model.checkpoint import load_checkpoint, load_module
from seglight.training.fit import train


@pytest.mark.slow  # inductor compiles C++ for a minute or more on 2 cores
def test_compiled_training_writes_plain_checkpoints(train_cfg):
    result = train(train_cfg("model.compile=true", "trainer.limit_train_batches=2", "trainer.max_epochs=1"))
    keys = set(load_checkpoint(result["best_ckpt"])["state_dict"])
    assert keys and not any("_orig_mod" in k for k in keys)  # nn.Module.compile() keeps the keys
    module = load_module(result["best_ckpt"])
    assert module.hp.compile is True
    assert module.predict_logits(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 64, 64)
