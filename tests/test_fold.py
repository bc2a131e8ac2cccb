"""Batch norm folded into convolutions for bf16 inference: the same logits in fp32, and refused where wrong."""

import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from seglight.inference.fold import bf16_model, check_input, conv_batchnorm_pairs, folded


def _with_running_stats(model: nn.Module) -> nn.Module:
    """Batch norms with non-trivial statistics and affine terms, as training leaves them."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("arch", ["Unet", "FPN", "DeepLabV3Plus"])  # torch.fx cannot trace FPN or DeepLabV3+
def test_folding_keeps_the_logits_and_removes_the_batch_norms(arch):
    torch.manual_seed(0)
    model = _with_running_stats(smp.create_model(arch, encoder_name="resnet18", encoder_weights=None, classes=5))
    x = torch.randn(2, 3, 64, 96)
    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    out, n = folded(model, x[:1])
    after = sum(isinstance(m, nn.BatchNorm2d) for m in out.modules())
    assert n >= 20 and after == before - n  # resnet18 alone has 20
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == before  # the original is untouched
    with torch.no_grad():
        torch.testing.assert_close(out(x), model(x), rtol=1e-4, atol=1e-4)


class PreNormSkip(nn.Module):
    """conv -> bn, but the conv's output is also added after the norm: folding would change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_a_fold_that_would_change_the_logits_is_not_used(caplog):
    model = _with_running_stats(PreNormSkip())
    x = torch.randn(1, 3, 16, 16)
    with caplog.at_level("WARNING"):
        out, n = folded(model, x)
    assert out is model and n == 0 and "predicting with the model as is" in caplog.text


def test_the_bf16_model_is_a_bf16_copy():
    model = _with_running_stats(smp.create_model("FPN", encoder_name="resnet18", encoder_weights=None, classes=5))
    fast = bf16_model(model, torch.randn(1, 3, 64, 64))
    assert {p.dtype for p in fast.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        agree = (fast(x.to(torch.bfloat16)).float().argmax(1) == model(x).argmax(1)).float().mean()
    assert agree > 0.9  # an untrained model's logits are near-tied; trained models: test_inference


class InPlaceBetween(nn.Module):
    """conv -> in-place ReLU -> bn: the norm's input is the conv's output tensor, changed since."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.relu_(self.conv(x)))


def test_an_in_place_op_between_conv_and_norm_stops_the_fold():
    model = _with_running_stats(InPlaceBetween())
    assert conv_batchnorm_pairs(model, check_input(3, 1, size=16)) == []  # not even tried: the check is a backstop
    out, n = folded(model, check_input(3, 1, size=16))
    assert n == 0 and out is model


def test_models_that_need_larger_inputs_and_timm_norms_fold_or_stay_as_they_are():
    # PAN fails below 128x128; timm's BatchNormAct2d is a norm and an activation: not a plain BatchNorm2d
    for arch, encoder in (("PAN", "resnet18"), ("Unet", "tu-regnety_002")):
        model = _with_running_stats(smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=5))
        out, n = folded(model, check_input(3, 32))
        assert n > 0
        x = torch.randn(1, 3, 128, 160)
        with torch.no_grad():
            torch.testing.assert_close(out(x), model(x), rtol=1e-4, atol=1e-4)
