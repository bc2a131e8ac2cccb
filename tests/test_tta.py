"""Multi-scale + flip TTA, and Gaussian blending of sliding windows."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seglight.inference.predictor import TTA, Predictor
from seglight.model.tiling import sliding_window, window_weights


def edgy_model(window: torch.Tensor) -> torch.Tensor:
    """A 'model' (B,3,h,w) -> (B,2,h,w) probabilities: the image's channel 0 (a smooth field) as the logit of
    class 1, plus a bias within 6 pixels of the window's border, as a CNN's zero padding skews its borders."""
    h, w = window.shape[-2:]
    bias = torch.zeros(h, w)
    bias[:6], bias[-6:], bias[:, :6], bias[:, -6:] = 1.5, 1.5, 1.5, 1.5
    logit = window[:, 0] + bias
    return torch.stack([torch.zeros_like(logit), logit], dim=1).softmax(dim=1)


def seam_energy(probs: torch.Tensor) -> float:
    """Mean squared difference of neighbouring pixels' probabilities inside the image (its outer 8 pixels left
    out: windows flush with the image's border bias it whatever the blending): jumps where windows meet."""
    probs = probs[..., 8:-8, 8:-8]
    dx = probs[..., :, 1:] - probs[..., :, :-1]
    dy = probs[..., 1:, :] - probs[..., :-1, :]
    return float(dx.pow(2).mean() + dy.pow(2).mean())


def test_gaussian_blending_has_less_seam_energy_than_uniform_averaging():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 200), torch.linspace(-1, 1, 300), indexing="ij")
    image = torch.stack([torch.sin(2 * xx) + yy, xx, yy])[None]  # smooth everywhere: any jump is a seam
    energy = {
        blend: seam_energy(sliding_window(edgy_model, image, 2, 64, 0.25, 32, blend=blend))
        for blend in ("uniform", "gaussian")
    }
    smooth = seam_energy(edgy_model(image))  # one window: the field's own variation, no seams
    assert energy["gaussian"] - smooth < 0.2 * (energy["uniform"] - smooth), (energy, smooth)


@pytest.mark.parametrize("blend", ["uniform", "gaussian"])
def test_blending_keeps_a_constant_and_one_window_is_the_image(blend):
    constant = lambda x: torch.full((x.shape[0], 3, *x.shape[-2:]), 1 / 3)  # noqa: E731
    image = torch.randn(1, 3, 150, 170)
    torch.testing.assert_close(sliding_window(constant, image, 3, 64, 0.25, 32, blend=blend), constant(image))
    whole = sliding_window(edgy_model, image, 2, 256, 0.25, 32, blend=blend)  # one window covers the image
    torch.testing.assert_close(whole, edgy_model(image))


def test_window_weights_peak_in_the_centre_and_refuse_unknown_blends():
    w = window_weights(64, 96)[0, 0]
    assert w[32, 48] == pytest.approx(1.0, abs=0.01) and w[0, 0] == pytest.approx(1e-3)
    assert (w > 0).all()
    with pytest.raises(ValueError, match="tile_blend='seamless'"):
        window_weights(8, 8, "seamless")


def test_tta_of_config_values():
    assert TTA.of(False) == TTA() and not TTA.of(False)
    assert TTA.of(True) == TTA(flip=True)
    assert TTA.of({"flip": False, "scales": [0.75, 1.0, 1.25]}) == TTA(False, (0.75, 1.0, 1.25))
    assert TTA.of({"flip": False, "scales": [0.75, 1.0, 1.25]})
    with pytest.raises(ValueError, match="tta.scales"):
        TTA.of({"scales": [0.0, 1.0]})


def test_multiscale_flip_tta_averages_every_pass(trained_tiny):
    ckpt = trained_tiny[0]
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    plain = Predictor.load(ckpt, precision="32")
    tta = Predictor.load(ckpt, precision="32", tta={"flip": True, "scales": [0.5, 1.0]})
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    expected = []
    for size in ((35, 45), (70, 90)):
        small = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        small = small.round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy()  # the image at that scale
        for flip in (False, True):
            p = torch.from_numpy(plain.predict_image(small[:, ::-1].copy() if flip else small))[None]
            p = p.flip(-1) if flip else p
            expected.append(F.interpolate(p, size=(70, 90), mode="bilinear", align_corners=False)[0])
    got = tta.predict_image(image)
    assert got.shape == (4, 70, 90)
    np.testing.assert_allclose(got.sum(0), 1.0, atol=1e-5)
    # resizing the normalised image (the Predictor) and the uint8 image (here) differ by rounding only
    np.testing.assert_allclose(got, torch.stack(expected).mean(0).numpy(), atol=0.02)
    assert not np.allclose(got, plain.predict_image(image), atol=1e-3)


class ContextModel(Predictor):
    """A 'model' whose logits depend on the window it sees: channel c of the input plus a multiple of the
    window's mean, so windows and TTA passes disagree near their borders."""

    def __init__(self, **kwargs):
        from seglight.data.palette import Palette

        names = ["a", "b", "c"]
        super().__init__(names, Palette(names, [(0, 0, 0), (1, 1, 1), (2, 2, 2)]), [0.0] * 3, [1.0] * 3, **kwargs)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(dim=(-2, -1), keepdim=True) * torch.tensor([0.0, 2.0, -2.0])[None, :, None, None]
        return 3 * x + context


@pytest.mark.parametrize("passes", [{"tile_size": 64}, {"tile_size": None, "tta": {"flip": True, "scales": [0.5, 1]}}])
def test_the_temperature_changes_probabilities_never_masks(passes):
    """A calibrated temperature (evaluate calibrate=true) must not move a mask: applied to each window or TTA pass
    before they are averaged, it did (argmax of a mean is not invariant to T); it is applied after."""
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (1, 3, 160, 192)).astype(np.float32))
    image = noise + torch.linspace(-2, 2, 192)  # windows to the left and right see different means
    plain = ContextModel(**passes).predict_probs(image)
    for t in (0.3, 3.0):
        tempered = ContextModel(temperature=t, **passes).predict_probs(image)
        assert torch.equal(tempered.argmax(1), plain.argmax(1)), t
        assert torch.allclose(tempered.sum(1), torch.ones(1, 160, 192), atol=1e-5)
        assert not torch.allclose(tempered, plain, atol=1e-3)  # the probabilities do change


def test_one_pass_with_a_temperature_is_softmax_of_logits_over_t():
    image = torch.from_numpy(np.random.default_rng(1).normal(0, 1, (1, 3, 64, 96)).astype(np.float32))
    model = ContextModel(temperature=2.5, tile_size=None)
    expected = (model._logits(image) / 2.5).softmax(1)
    assert torch.allclose(model.predict_probs(image), expected, atol=1e-5)
