"""Segformer, UPerNet and DPT presets, timm (tu-) encoders and their weights offline, and freezing the encoder.

Each preset trains 2 steps through the real ``train`` at its smallest widths and predicts an image whose sides are
not multiples of 32 through ``Predictor``; timm's test models (``test_resnet``, ``test_convnext``, ``test_vit``)
stand in for real ones.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import pytorch_lightning as pl
import timm
import torch
from huggingface_hub import constants as hub_constants
from hydra.utils import instantiate

from seglight.inference.predictor import Predictor
from seglight.model import factory
from seglight.model.factory import WeightsUnavailableError, create_model, input_divisor, set_encoder_frozen
from seglight.model.metrics import MONITOR
from seglight.model.module import SegmentationModule
from seglight.training.fit import build_module, build_trainer, train

# preset -> (smp class, overrides for the smallest widths; the preset's own encoder unless named)
PRESETS = {
    "segformer": ("Segformer", ["+model.model_kwargs.decoder_segmentation_channels=16"]),  # mit_b0
    "upernet": ("UPerNet", ["+model.model_kwargs.decoder_channels=16"]),  # resnet18
    "dpt": (
        "DPT",
        [
            "encoder.name=tu-test_vit",
            "+model.model_kwargs.decoder_intermediate_channels=[16,16,16,16]",
            "+model.model_kwargs.decoder_fusion_channels=16",
        ],
    ),
    "unet, timm encoder": ("Unet", ["encoder.name=tu-test_resnet"]),
    "fpn_light": ("FPN", []),  # timm's RegNetX-400MF, chosen by the model preset
}
ODD_SIZE = (50, 70)  # (H, W): neither side a multiple of 32


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_trains_and_predicts_an_odd_size(train_cfg, preset):
    arch, overrides = PRESETS[preset]
    model = preset.split(",")[0]
    metrics = train(train_cfg(f"model={model}", *overrides, "logger=none"))
    assert 0.0 <= metrics[MONITOR] <= 1.0
    predictor = Predictor.load(metrics["best_ckpt"], device="cpu")
    assert predictor.module.hp.arch == arch and predictor.divisor == 32
    image = np.random.default_rng(0).integers(0, 256, (*ODD_SIZE, 3), dtype=np.uint8)
    probs = predictor.predict_image(image)  # (C,H,W)
    assert probs.shape == (4, *ODD_SIZE) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    (mask,) = predictor.predict_masks([image])  # (H,W) uint8
    assert mask.shape == ODD_SIZE and mask.max() < 4


def test_preset_encoders():
    from seglight.config import compose_config

    chosen = {m: compose_config([f"model={m}"]).model.encoder_name for m in ("segformer", "upernet", "dpt")}
    assert chosen == {"segformer": "mit_b0", "upernet": "resnet18", "dpt": "tu-vit_tiny_patch16_224"}
    assert compose_config(["model=segformer", "encoder=resnet34"]).model.encoder_name == "resnet34"  # user wins
    assert compose_config(["model=fpn_light"]).model.encoder_name == "tu-regnetx_004"
    assert compose_config(["model=fpn_light", "encoder=resnet18"]).model.encoder_name == "resnet18"
    # the CamVid preset's encoder comes with its model (fpn_light), so a model chosen on the command line keeps its own
    assert compose_config(["experiment=camvid"]).model.encoder_name == "tu-regnetx_004"
    assert compose_config(["experiment=camvid", "encoder=resnet18"]).model.encoder_name == "resnet18"
    assert compose_config(["experiment=camvid", "model=segformer"]).model.encoder_name == "mit_b0"
    assert compose_config(["experiment=camvid", "model=linknet"]).model.encoder_name == "resnet18"
    assert compose_config(["experiment=camvid_long", "model=dpt"]).model.encoder_name == "tu-vit_tiny_patch16_224"


def test_dpt_divisor_is_32_for_a_patch_16_vit():
    """The ViT's stride is 16, but DPT's coarsest map is 1/32 of the input: 48 (3 patches) does not fit."""
    model = create_model("DPT", "tu-test_vit", None, 3, 2, decoder_intermediate_channels=[8] * 4, dynamic_img_size=True)
    assert model.encoder.output_stride == 16 and input_divisor(model) == 32
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 96)).shape == (1, 2, 64, 96)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, 48, 48))


# ---- timm encoder weights ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arch", "encoder", "kwargs"),
    [("Unet", "tu-test_resnet", {}), ("DPT", "tu-test_vit", {"dynamic_img_size": True})],
)
def test_timm_hub_weights_offline_fail_at_once(monkeypatch, tmp_path, arch, encoder, kwargs):
    """As in a process that imported huggingface_hub online: the flag read at import is off, the cache empty."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(factory, "reachable", lambda host: False)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match=rf"'imagenet' weights for encoder '{encoder}'.*offline") as e:
        create_model(arch, encoder, "imagenet", 3, 2, **kwargs)
    assert time.monotonic() - start < 10  # the hub client's retries took 46 s
    assert "encoder.weights=/path/to/weights.pth" in str(e.value)
    assert hub_constants.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ  # restored


@pytest.mark.parametrize(
    ("arch", "encoder", "kwargs", "own", "reference_key"),
    [
        ("UPerNet", "tu-test_convnext", {"decoder_channels": 8}, "stem_0.weight", "stem.0.weight"),
        ("DPT", "tu-test_vit", {"dynamic_img_size": True}, "patch_embed.proj.weight", "patch_embed.proj.weight"),
    ],
)
def test_timm_encoder_loads_a_local_timm_state_dict(tmp_path, arch, encoder, kwargs, own, reference_key):
    """timm loads the file, with its own key mapping (features_only models rename stem.0 to stem_0)."""
    reference = timm.create_model(encoder[3:]).state_dict()
    path = tmp_path / "weights.pth"
    torch.save(reference, path)
    model = create_model(arch, encoder, str(path), 3, 2, **kwargs)
    state = model.encoder.model.state_dict()
    torch.testing.assert_close(state[own], reference[reference_key])
    assert sum(any(torch.equal(v, r) for r in reference.values()) for v in state.values()) == len(state)


def test_timm_encoder_refuses_another_models_file(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    with pytest.raises(WeightsUnavailableError, match=r"resnet.pth: timm could not load it into encoder"):
        create_model("Unet", "tu-test_convnext", str(path), 3, 2)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model("Unet", "tu-test_convnext", str(tmp_path / "nope.pth"), 3, 2)


# ---- freezing the encoder ------------------------------------------------------------------------------
class _Record(pl.Callback):
    """The module's state at fit start and after each training epoch; the encoder's mode in each training step."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, torch.Tensor]] = {}
        self.steps: list[tuple[int, bool, bool]] = []  # (epoch, any encoder norm training, any requires_grad)

    def _save(self, name: str, module: pl.LightningModule) -> None:
        self.states[name] = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def on_fit_start(self, trainer, module) -> None:
        self._save("init", module)

    def on_train_batch_start(self, trainer, module, *args) -> None:
        encoder = module.model.encoder
        norms = [m.training for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        self.steps.append((trainer.current_epoch, any(norms), any(p.requires_grad for p in encoder.parameters())))

    def on_train_epoch_end(self, trainer, module) -> None:
        self._save(f"epoch {trainer.current_epoch}", module)


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> dict[str, bool]:
    return {k: not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix)}


def test_encoder_frozen_for_the_first_epoch_then_trained(train_cfg):
    cfg = train_cfg("model.freeze_encoder_epochs=1", "trainer.max_epochs=2", "optimizer.weight_decay=0.5")
    record = _Record()
    trainer = build_trainer(cfg, extra_callbacks=[record])
    dm = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, dm)
    trainer.fit(module, datamodule=dm)
    init, first, second = record.states["init"], record.states["epoch 0"], record.states["epoch 1"]
    frozen = _changed(init, first, "model.encoder.")
    assert len(frozen) > 100 and not any(frozen.values())  # weights, BN running stats: bit-identical despite decay
    assert any(k.endswith("running_mean") for k in frozen)
    trained = _changed(init, first, "model.decoder.")
    assert sum(trained.values()) > 0.9 * len(trained)
    unfrozen = _changed(first, second, "model.encoder.")
    assert unfrozen["model.encoder.conv1.weight"] and unfrozen["model.encoder.layer4.1.bn2.running_var"]
    assert record.steps == [(0, False, False), (0, False, False), (1, True, True), (1, True, True)]
    assert all(p.requires_grad for p in module.parameters())  # left trainable after fit


def test_frozen_encoder_still_follows_eval():
    """smp's freeze_encoder would leave mit_b0's drop-path on in eval(); set_encoder_frozen does not."""
    model = create_model("Segformer", "mit_b0", None, 3, 2, decoder_segmentation_channels=8)
    set_encoder_frozen(model.train(), True)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_freeze_under_ddp_lets_ddp_skip_the_frozen_parameters(train_cfg):
    ddp = ["trainer=ddp", "trainer.strategy=ddp_spawn", "trainer.devices=2", "trainer.accelerator=cpu"]
    frozen = build_trainer(train_cfg(*ddp, "model.freeze_encoder_epochs=2"))
    assert frozen.strategy._ddp_kwargs["find_unused_parameters"] is True  # type: ignore[attr-defined]
    plain = build_trainer(train_cfg(*ddp))
    assert not plain.strategy._ddp_kwargs.get("find_unused_parameters")  # type: ignore[attr-defined]


def test_negative_freeze_epochs_refused():
    with pytest.raises(ValueError, match="model.freeze_encoder_epochs=-1"):
        SegmentationModule(class_names=["a", "b"], freeze_encoder_epochs=-1)
