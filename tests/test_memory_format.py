"""Models in channels_last: GroupNorm runs on a contiguous copy of its CPU input, with the same values."""

import copy

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from seglight.inference.predictor import TorchPredictor
from seglight.model.memory_format import ContiguousGroupNorm, to_channels_last
from seglight.model.module import SegmentationModule


def _light_fpn() -> nn.Module:
    torch.manual_seed(0)
    return smp.FPN("resnet18", encoder_weights=None, encoder_depth=3, classes=4, decoder_segmentation_channels=32)


def _fpn_module(channels_last: bool) -> SegmentationModule:
    return SegmentationModule(
        class_names=["a", "b", "c"],
        arch="fpn",
        encoder_name="resnet18",
        model_kwargs={"encoder_depth": 3, "decoder_segmentation_channels": 32},
        channels_last=channels_last,
    )


def _group_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.GroupNorm)]


@pytest.mark.parametrize(
    "dtype, weight_dtype, tol",
    [(torch.float32, torch.float32, 1e-5), (torch.bfloat16, torch.bfloat16, 2e-2), (torch.bfloat16, None, 2e-2)],
    ids=["fp32", "bf16", "bf16 input, fp32 weights (autocast)"],
)
def test_contiguous_group_norm_gives_group_norms_values_and_gradients(dtype, weight_dtype, tol):
    torch.manual_seed(0)
    plain = nn.GroupNorm(4, 16)
    nn.init.normal_(plain.weight)
    nn.init.normal_(plain.bias)
    fast = ContiguousGroupNorm(4, 16)
    fast.load_state_dict(plain.state_dict())
    x = (torch.randn(2, 16, 9, 7) * 3 + 1).to(dtype)
    grad = torch.randn(2, 16, 9, 7).to(dtype)
    results = []
    for norm, layout in ((plain, torch.contiguous_format), (fast, torch.channels_last)):
        xi = x.clone().contiguous(memory_format=layout).requires_grad_()
        out = norm.to(weight_dtype or torch.float32)(xi)
        out.backward(grad.contiguous(memory_format=layout))
        results.append((out, xi.grad, norm.weight.grad))
    (ref, ref_dx, ref_dw), (out, dx, dw) = results
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    for a, b in ((out, ref), (dx, ref_dx), (dw, ref_dw)):
        torch.testing.assert_close(a.float(), b.float(), atol=tol, rtol=tol)


def test_group_norm_sees_a_contiguous_input_in_a_channels_last_model(monkeypatch):
    model = to_channels_last(_light_fpn())
    seen = []
    real = F.group_norm

    def spy(x, *args, **kwargs):
        seen.append(x.is_contiguous())
        return real(x, *args, **kwargs)

    monkeypatch.setattr(F, "group_norm", spy)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    assert len(seen) == len(_group_norms(model)) > 0
    assert all(seen)


def test_to_channels_last_keeps_the_state_and_the_logits():
    plain = _light_fpn().eval()
    fast = to_channels_last(copy.deepcopy(plain))
    assert {type(m) for m in _group_norms(fast)} == {ContiguousGroupNorm}
    assert len(_group_norms(fast)) == len(_group_norms(plain))
    assert fast.state_dict().keys() == plain.state_dict().keys()
    _light_fpn().load_state_dict(fast.state_dict())  # strict: a checkpoint loads either way
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = plain(x)
        out = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_module_swaps_group_norms_only_in_channels_last(channels_last):
    module = _fpn_module(channels_last)
    kinds = {type(m) for m in _group_norms(module.model)}
    assert kinds == ({ContiguousGroupNorm} if channels_last else {nn.GroupNorm})


def test_predict_swaps_the_group_norms_of_a_module_trained_without_channels_last():
    module = _fpn_module(channels_last=False)
    predictor = TorchPredictor(module, device="cpu", precision="32-true")
    assert {type(m) for m in _group_norms(predictor.module.model)} == {ContiguousGroupNorm}
