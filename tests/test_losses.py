import pytest
import torch

from seglight.model.losses import LOSSES, WeightedSum, build_loss

C, IGNORE = 4, 255


def target_and_logits(margin: float = 20.0):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, C, (2, 16, 16), generator=g)  # (B,H,W)
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
    target, perfect, wrong = target_and_logits(margin=2.0)
    logits = torch.where((target == 0)[:, None], wrong, perfect)  # wrong on class 0 only
    plain = build_loss(name, C, IGNORE)(logits, target)
    weighted = build_loss(name, C, IGNORE, class_weights=[10.0, 0.1, 0.1, 0.1])(logits, target)
    assert weighted > 1.3 * plain, (float(plain), float(weighted))  # weighting up the wrong class raises the loss


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


WEIGHTED = [name for name in sorted(LOSSES) if name != "lovasz"]  # lovasz takes no class weights


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(
    ("name", "weights"),
    [pytest.param(n, None, id=n) for n in sorted(LOSSES)]
    + [pytest.param(n, [1.0, 2.0, 0.5, 3.0], id=f"{n}-weighted") for n in WEIGHTED],
)
def test_all_void_batch_gives_zero_loss_and_zero_gradient(name, weights, dtype):
    logits = torch.randn(2, C, 8, 8).to(dtype).requires_grad_()  # (B,C,H,W)
    target = torch.full((2, 8, 8), IGNORE)  # (B,H,W), every pixel void
    loss = build_loss(name, C, IGNORE, weights)(logits, target)
    assert loss.shape == () and float(loss.detach()) == 0.0, loss  # 0, so finite
    loss.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 3.0]])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_ce_with_void_pixels_matches_torch(weights, label_smoothing):
    # torch's mean divides by the summed weights of the non-void pixels' classes (their count if unweighted).
    target, perfect, _ = target_and_logits()
    target[0, :5] = IGNORE
    logits = torch.randn_like(perfect)
    w = None if weights is None else torch.tensor(weights)
    expected = torch.nn.functional.cross_entropy(
        logits, target, weight=w, ignore_index=IGNORE, label_smoothing=label_smoothing
    )
    loss = build_loss("ce", C, IGNORE, weights, label_smoothing=label_smoothing)(logits, target)
    torch.testing.assert_close(loss, expected)


def test_bf16_logits_give_the_fp32_loss():
    target, perfect, _ = target_and_logits()
    logits = torch.randn_like(perfect).bfloat16()
    for name in sorted(LOSSES):
        loss = build_loss(name, C, IGNORE)
        torch.testing.assert_close(loss(logits, target), loss(logits.float(), target))


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 3.0]])
def test_ohem_keeping_every_pixel_is_plain_ce(weights):
    target, perfect, _ = target_and_logits()
    logits = torch.randn_like(perfect)
    target[0, :3] = IGNORE
    plain = build_loss("ce", C, IGNORE, weights)(logits, target)
    assert torch.isclose(build_loss("ce", C, IGNORE, weights, ohem=1.0)(logits, target), plain, atol=1e-6)


def test_ohem_averages_the_hardest_fraction_only():
    target, perfect, _ = target_and_logits()
    logits = torch.randn_like(perfect)
    target[1, :5] = IGNORE
    pixel = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    valid = pixel[target != IGNORE]
    k = -(-valid.numel() // 4)  # ceil
    expected = valid.sort(descending=True).values[:k].mean()
    got = build_loss("ce", C, IGNORE, ohem=0.25)(logits, target)
    assert torch.isclose(got, expected, atol=1e-6), (float(got), float(expected))
    assert got > 1.5 * build_loss("ce", C, IGNORE)(logits, target)


def test_ohem_reaches_the_cross_entropy_term_of_dice_ce_and_rejects_bad_fractions():
    target, perfect, wrong = target_and_logits(margin=4.0)
    logits = perfect.clone()
    logits[:, :, :2] = wrong[:, :, :2]  # 1/8 of the pixels wrong
    plain = build_loss("dice_ce", C, IGNORE, dice_weight=0.0)(logits, target)
    hard = build_loss("dice_ce", C, IGNORE, dice_weight=0.0, ohem=0.125)(logits, target)
    assert hard > 6 * plain, (float(plain), float(hard))
    with pytest.raises(ValueError, match="ohem"):
        build_loss("ce", C, IGNORE, ohem=0.0)


def one_hot_tversky(logits, target, weight, alpha, beta, smooth, eps=1e-7):
    """The soft Tversky loss as written in the textbook, in the logits' dtype: a one-hot target (B,C,H,W), void
    pixels zeroed."""
    valid = (target != IGNORE).unsqueeze(1).to(logits.dtype)
    probs = logits.softmax(1) * valid
    one_hot = torch.nn.functional.one_hot(torch.where(target == IGNORE, 0, target), logits.shape[1])
    one_hot = one_hot.permute(0, 3, 1, 2) * valid
    tp, fp, fn = (
        (probs * one_hot).sum((0, 2, 3)),
        (probs * (1 - one_hot)).sum((0, 2, 3)),
        ((1 - probs) * one_hot).sum((0, 2, 3)),
    )
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)
    present = (one_hot.sum((0, 2, 3)) > 0).float() * weight
    return ((1 - index) * present).sum() / present.sum().clamp_min(eps)


@pytest.mark.parametrize(("alpha", "beta", "smooth"), [(0.5, 0.5, 0.0), (1.0, 1.0, 0.0), (0.3, 0.7, 1.0)])
def test_tversky_without_a_one_hot_matches_the_textbook_loss_and_gradient(alpha, beta, smooth):
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, C, (2, 12, 10), generator=g)
    target[0, :3] = IGNORE
    target[target == 3] = 2  # class 3 absent: left out of the mean
    logits = (3 * torch.randn(2, C, 12, 10, generator=g)).requires_grad_()
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    loss = build_loss("tversky", C, IGNORE, weight.tolist(), alpha=alpha, beta=beta, smooth=smooth)(logits, target)
    (grad,) = torch.autograd.grad(loss, logits)
    expected = one_hot_tversky(logits, target, weight, alpha, beta, smooth)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-8)  # |grad| is ~1e-5 here


@pytest.mark.parametrize("ohem", [None, 0.5])
def test_dice_ce_on_one_log_softmax_matches_its_terms_and_their_gradients(ohem):
    target, perfect, _ = target_and_logits()
    target[1, :4] = IGNORE
    logits = torch.randn_like(perfect).requires_grad_()
    w = [1.0, 2.0, 0.5, 3.0]
    combo = build_loss("dice_ce", C, IGNORE, w, dice_weight=0.3, ce_weight=2.0, ohem=ohem)(logits, target)
    terms = 0.3 * build_loss("dice", C, IGNORE, w)(logits, target)
    terms = terms + 2.0 * build_loss("ce", C, IGNORE, w, ohem=ohem)(logits, target)
    torch.testing.assert_close(combo, terms)
    torch.testing.assert_close(torch.autograd.grad(combo, logits)[0], torch.autograd.grad(terms, logits)[0])


def test_a_label_smoothed_term_of_a_sum_keeps_its_own_logits():
    from seglight.model.losses import WeightedSum

    target, perfect, _ = target_and_logits()
    logits = torch.randn_like(perfect)
    smoothed, dice = build_loss("ce", C, IGNORE, label_smoothing=0.1), build_loss("dice", C, IGNORE)
    total = WeightedSum({"ce": (1.0, smoothed), "dice": (0.5, dice)})(logits, target)
    torch.testing.assert_close(total, smoothed(logits, target) + 0.5 * dice(logits, target))


@pytest.mark.parametrize("autocast", [None, torch.bfloat16, torch.float16], ids=["fp32", "bf16-mixed", "16-mixed"])
def test_dice_stays_exact_on_a_confident_preset_sized_batch(autocast):
    # fp and fn are a small part of sums over ~60k pixels per class: summed one value at a time in fp32, or by a
    # matmul that autocast takes to bf16/fp16, they came out 12-35 % off (fp16 overflowed).
    g = torch.Generator().manual_seed(0)
    c = 11
    target = torch.randint(0, c, (8, 14, 16), generator=g).repeat_interleave(16, 1).repeat_interleave(16, 2)
    target[:, :28] = IGNORE  # (B,H,W) = (8,224,256), blocks of 16x16 pixels, some void
    hot = torch.nn.functional.one_hot(target.clamp_max(c - 1), c).permute(0, 3, 1, 2)
    logits = torch.randn(8, c, 224, 256, generator=g) + 10 * hot  # (B,C,H,W), a confident model
    weight = torch.ones(c)
    expected = one_hot_tversky(logits.double(), target, weight.double(), 0.5, 0.5, 0.0)
    dice = build_loss("dice", c, IGNORE)
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        got = dice(logits if autocast is None else logits.to(autocast), target)
    assert abs(float(got) - float(expected)) < 1e-3 * float(expected), (float(got), float(expected))


def test_dice_of_volumes_sums_over_every_pixel():
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, C, (2, 3, 5, C), generator=g)  # (B,D,H,W), W == C on purpose
    target[0, 0] = IGNORE
    logits = torch.randn(2, C, 3, 5, C, generator=g)  # (B,C,D,H,W)
    dice = build_loss("dice", C, IGNORE)
    torch.testing.assert_close(dice(logits, target), dice(logits.reshape(2, C, 15, C), target.reshape(2, 15, C)))


CLOSED_FORM = [
    ("ce", {}),
    ("dice", {}),
    ("jaccard", {"smooth": 1.0}),
    ("tversky", {"alpha": 0.3, "beta": 0.7}),
    ("dice_ce", {}),
    ("dice_ce", {"dice_weight": 0.3, "ce_weight": 2.0}),
    ("ce+dice", {}),  # cross-entropy's term first: a per-class term of None (0) added to a tensor
    ("ce+ce", {}),  # no per-class term at all
]


def closed_form_loss(name: str, weights, **kwargs):
    """build_loss's loss, or for "a+b" a WeightedSum of a (weight 2) and b (weight 0.5) in that order."""
    if "+" not in name:
        return build_loss(name, C, IGNORE, weights, **kwargs)
    first, second = name.split("+")
    return WeightedSum({"a": (2.0, build_loss(first, C, IGNORE, weights)), "b": (0.5, build_loss(second, C, IGNORE))})


def void_and_absent(shape=(3, 9, 11), seed=3):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C, shape, generator=g)
    target[target == 3] = 1  # class 3 absent from the batch
    target[0, :4] = IGNORE
    logits = 3 * torch.randn(shape[0], C, *shape[1:], generator=g)
    return target, logits


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 3.0]], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("name", "kwargs"), CLOSED_FORM, ids=[f"{n}{k or ''}" for n, k in CLOSED_FORM])
def test_the_closed_form_gradient_is_autograds(name, kwargs, weights):
    for shape in [(3, 9, 11), (2, 3, 5, 4)]:  # images and volumes
        target, logits = void_and_absent(shape)
        loss = closed_form_loss(name, weights, **kwargs)
        closed = logits.clone().requires_grad_()
        value = loss(closed, target)
        assert type(value.grad_fn).__name__ == "ClosedFormLossBackward", value.grad_fn
        value.backward()
        reference = logits.clone().requires_grad_()
        expected = loss.autograd_path(reference, target)
        assert "ClosedForm" not in type(expected.grad_fn).__name__
        expected.backward()
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(closed.grad, reference.grad, rtol=1e-4, atol=1e-8)  # |grad| ~ 1e-3
        assert float(closed.grad[0, :, :4].abs().max()) == 0.0  # void pixels get no gradient


def test_the_closed_form_under_bf16_autocast_on_channels_last_logits():
    target, logits = void_and_absent((2, 16, 12))
    loss = build_loss("dice_ce", C, IGNORE, [1.0, 2.0, 0.5, 3.0])
    bf16 = logits.bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss(bf16, target).backward()
    reference = logits.bfloat16().float().requires_grad_()
    loss.autograd_path(reference, target).backward()
    assert bf16.grad.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.grad.float(), reference.grad, rtol=2e-2, atol=1e-5)


def test_a_scaled_fp16_gradient_keeps_its_small_entries():
    # 16-mixed: the GradScaler multiplies the loss by 2^16 so that gradients of ~1e-6 survive fp16; the closed form
    # must scale before it casts to fp16
    target, logits = void_and_absent((8, 96, 96))
    loss, scale = build_loss("dice_ce", C, IGNORE, [1.0, 2.0, 0.5, 3.0]), 2.0**16
    half = logits.half().requires_grad_()
    (loss(half, target) * scale).backward()
    reference = logits.half().float().requires_grad_()
    (loss.autograd_path(reference, target) * scale).backward()
    lost = (half.grad == 0) & (reference.grad != 0)
    assert float(lost.float().mean()) < 1e-3, float(lost.float().mean())
    atol = 1e-3 * float(reference.grad.abs().max())
    torch.testing.assert_close(half.grad.float(), reference.grad, rtol=1e-2, atol=atol)


def closed_form_calls(monkeypatch) -> list[int]:
    """A list that grows by one at each ClosedFormLoss call."""
    from seglight.model.closed_form import ClosedFormLoss

    calls: list[int] = []
    apply = ClosedFormLoss.apply
    monkeypatch.setattr(ClosedFormLoss, "apply", lambda *args: calls.append(1) or apply(*args))
    return calls


@pytest.mark.parametrize(
    "case", ["ohem", "smoothing", "no_grad", "logits_without_grad", "two_ignore_indices", "closed"]
)
def test_the_closed_form_is_taken_only_where_it_holds(case, monkeypatch):
    from seglight.model.losses import WeightedSum

    target, logits = void_and_absent()
    calls = closed_form_calls(monkeypatch)
    kwargs = {"ohem": {"ohem": 0.5}, "smoothing": {"label_smoothing": 0.1}}.get(case, {})
    loss = build_loss("ce", C, IGNORE, **kwargs)
    if case == "two_ignore_indices":  # the closed form would take the first term's for both
        target[target == IGNORE] = 0
        loss = WeightedSum({"ce": (1.0, loss), "dice": (1.0, build_loss("dice", C, 3))})
    logits.requires_grad_(case != "logits_without_grad")
    with torch.set_grad_enabled(case != "no_grad"):
        value = loss(logits, target)
    assert len(calls) == (case == "closed"), case
    if case in ("no_grad", "logits_without_grad"):  # evaluation: the same value as the closed form's
        torch.testing.assert_close(value, loss(logits.detach().requires_grad_(), target).detach())
        assert len(calls) == 1


def test_a_gradient_of_the_closed_form_gradient_raises():
    target, logits = void_and_absent()
    logits.requires_grad_()
    value = build_loss("dice_ce", C, IGNORE)(logits, target)
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(value, logits, create_graph=True)
