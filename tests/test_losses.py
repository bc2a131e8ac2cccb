import pytest
import torch

from seglight.losses import LOSSES, build_loss

C, IGNORE = 4, 255


def target_and_logits(margin: float = 20.0):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, C, (2, 16, 16), generator=g)           # (B,H,W)
    perfect = torch.nn.functional.one_hot(target, C).permute(0, 3, 1, 2).float() * margin  # (B,C,H,W)
    wrong = torch.nn.functional.one_hot((target + 1) % C, C).permute(0, 3, 1, 2).float() * margin
    return target, perfect, wrong


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_near_zero_for_perfect_larger_for_wrong(name):
    target, perfect, wrong = target_and_logits()
    loss = build_loss(name, C, IGNORE)
    good, bad = float(loss(perfect, target)), float(loss(wrong, target))
    assert good < 1e-3, good
    assert bad > 0.5, bad


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ignored_pixels_do_not_count(name):
    target, perfect, wrong = target_and_logits()
    target[:, :4] = IGNORE
    mixed = perfect.clone()
    mixed[:, :, :4] = wrong[:, :, :4]  # garbage only where the target says ignore
    loss = build_loss(name, C, IGNORE)
    assert float(loss(mixed, target)) < 1e-3
    assert torch.isclose(loss(mixed, target), loss(perfect, target), atol=1e-5)


@pytest.mark.parametrize("name", ["ce", "dice", "focal", "dice_ce", "jaccard", "tversky"])
def test_class_weights_change_the_loss(name):
    target, perfect, _ = target_and_logits()
    logits = perfect * 0.05 + torch.randn_like(perfect)  # imperfect, class-dependent errors
    plain = build_loss(name, C, IGNORE)(logits, target)
    weighted = build_loss(name, C, IGNORE, class_weights=[10.0, 0.1, 0.1, 0.1])(logits, target)
    assert not torch.isclose(plain, weighted, rtol=1e-3)


def test_weighted_ce_matches_torch():
    target, perfect, _ = target_and_logits()
    logits = torch.randn_like(perfect)
    w = [1.0, 2.0, 0.5, 3.0]
    expected = torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor(w))
    assert torch.isclose(build_loss("ce", C, IGNORE, w)(logits, target), expected)


def test_focal_gamma_zero_is_cross_entropy():
    target, perfect, _ = target_and_logits()
    logits = torch.randn_like(perfect)
    focal = build_loss("focal", C, IGNORE, gamma=0.0, alpha=1.0)(logits, target)
    assert torch.isclose(focal, torch.nn.functional.cross_entropy(logits, target), atol=1e-5)


def test_dice_ce_weights_combine_terms():
    target, perfect, _ = target_and_logits()
    logits = torch.randn_like(perfect)
    d, c = build_loss("dice", C, IGNORE)(logits, target), build_loss("ce", C, IGNORE)(logits, target)
    combo = build_loss("dice_ce", C, IGNORE, dice_weight=0.3, ce_weight=2.0)(logits, target)
    assert torch.isclose(combo, 0.3 * d + 2.0 * c, atol=1e-5)


def test_unknown_loss_lists_choices():
    with pytest.raises(ValueError, match="dice_ce"):
        build_loss("dcie", C)


def test_wrong_number_of_class_weights():
    with pytest.raises(ValueError, match="3 class weights given for 4 classes"):
        build_loss("ce", C, class_weights=[1, 2, 3])
