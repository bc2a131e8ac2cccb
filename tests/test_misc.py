from types import SimpleNamespace

import pytest
import torch

from seglight.model.module import SegmentationModule
from seglight.model.optim import build_optimizer, fusable, lr_factor
from seglight.training.loggers import wandb_mode
from seglight.util import hardware


def test_precision_auto_follows_cpu_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert hardware.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert hardware.resolve_precision("auto", "cpu") == "32-true"
    assert hardware.resolve_precision("16-mixed", "cpu") == "16-mixed"


@pytest.mark.parametrize("major, expected", [(9, "bf16-mixed"), (8, "bf16-mixed"), (7, "16-mixed")])
def test_precision_auto_on_a_gpu_picks_bf16_only_where_native(monkeypatch, major, expected):
    """A T4 or V100 (compute capability 7) emulates bf16; torch's ``is_bf16_supported()`` still says True there."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: major >= 8 or including_emulation
    )
    assert hardware.resolve_precision("auto", "gpu") == expected


def test_an_isa_cap_below_bf16_means_no_native_bf16(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN emulate bf16 (7x slower than fp32 here): auto must not pick it."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    try:
        for isa, native in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("ALL", True)):
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
            hardware.cpu_has_fast_bf16.cache_clear()
            assert hardware.cpu_has_fast_bf16() is native, isa
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
        hardware.cpu_has_fast_bf16.cache_clear()
        assert hardware.resolve_precision("auto", "cpu") == "32-true"
    finally:
        hardware.cpu_has_fast_bf16.cache_clear()


def test_wandb_offline_without_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_MODE", "")  # empty is invalid for wandb: treated as unset
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("auto") == "disabled"


def test_wandb_offline_with_key_but_no_server(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "https://127.0.0.1:9")  # closed port: refused at once
    assert wandb_mode("auto") == "offline"


@pytest.mark.parametrize("name", ["cosine", "poly"])
def test_schedules_warm_up_then_decay(name):
    f = [lr_factor(name, s, total_steps=100, warmup_steps=10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.05


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_adam_and_adamw_take_the_fused_step_on_cpu_with_the_same_update(name):
    torch.manual_seed(0)
    weights = [torch.randn(5, 3), torch.randn(3)]
    grads = [torch.randn_like(w) for w in weights]
    steps = {}
    for arm, kwargs in {"auto": {}, "unfused": {"fused": False}, "foreach": {"foreach": True}}.items():
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        opt = build_optimizer(name, params, lr=0.1, weight_decay=0.01, **kwargs)
        assert bool(opt.defaults["fused"]) == (arm == "auto" and name != "sgd"), arm  # SGD: see FUSED_BY_DEFAULT
        for _ in range(3):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
        steps[arm] = params
    for arm in ("unfused", "foreach"):
        for p, q in zip(steps["auto"], steps[arm]):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not fusable([torch.nn.Parameter(torch.zeros(2, device="meta"))])


def test_parameter_groups_keep_their_parameters():
    encoder, decoder = torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)
    groups = [{"params": encoder.parameters(), "lr": 1e-4}, {"params": decoder.weight}]  # a generator, a tensor
    opt = build_optimizer("adamw", groups, lr=0.1)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 1] and opt.defaults["fused"]
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 0.1]


@pytest.mark.parametrize("decay", [True, False])
def test_norms_and_biases_can_skip_weight_decay(decay):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 2))
    model[1].weight.data.uniform_(0.5, 1.5)
    model[1].bias.data.uniform_(0.5, 1.5)  # BatchNorm's shift starts at 0, which decay would leave at 0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    head = {"params": model[2].parameters(), "lr": 0.05}  # a group of its own keeps its lr once split
    params = [{"params": [*model[0].parameters(), *model[1].parameters()]}, head]
    opt = build_optimizer("adamw", params, lr=0.1, weight_decay=0.5, decay_norms_and_biases=decay)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # AdamW's step is then weight decay alone: p *= 1 - lr * weight_decay
    opt.step()
    for name, p in model.named_parameters():
        lr = 0.05 if name.startswith("2.") else 0.1
        shrink = 1 - lr * 0.5 if decay or p.ndim > 1 else 1.0
        torch.testing.assert_close(p.detach(), before[name] * shrink, msg=name)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(before)


def test_the_optimizer_config_passes_decay_norms_and_biases_to_the_module(train_cfg):
    from hydra.utils import instantiate

    from seglight.training.fit import build_module

    for overrides, decays in [((), [0.05]), (("optimizer.decay_norms_and_biases=false",), [0.05, 0.0])]:
        cfg = train_cfg("optimizer=adamw", "optimizer.weight_decay=0.05", "scheduler=none", *overrides)
        groups = build_module(cfg, instantiate(cfg.data, _convert_="all")).configure_optimizers().param_groups
        assert [g["weight_decay"] for g in groups] == decays, overrides
    assert all(p.ndim <= 1 for p in groups[1]["params"]) and all(p.ndim > 1 for p in groups[0]["params"])


@pytest.mark.parametrize("saved_fused", [True, False])
def test_a_loaded_optimizer_state_keeps_this_runs_step_kernel(saved_fused):
    model = torch.nn.Linear(3, 2)
    model(torch.randn(4, 3)).sum().backward()
    saved = build_optimizer("adamw", model.parameters(), lr=0.1, fused=saved_fused)
    saved.step()
    loaded = build_optimizer("adamw", model.parameters(), lr=0.1, fused=not saved_fused)
    loaded.load_state_dict(saved.state_dict())
    assert all(bool(g["fused"]) == (not saved_fused) for g in loaded.param_groups)
    assert torch.equal(loaded.state_dict()["state"][0]["exp_avg"], saved.state_dict()["state"][0]["exp_avg"])
    loaded.step()  # steps with the loaded state


def test_the_module_keeps_the_unfused_step_where_lightning_clips_or_scales():
    from pytorch_lightning.plugins.precision import MixedPrecision, Precision

    module = SegmentationModule(["a", "b"], encoder_name="resnet18", scheduler="none")
    assert module.configure_optimizers().defaults["fused"]  # no trainer
    cases = [
        (MixedPrecision("bf16-mixed", "cpu"), None, True),
        (MixedPrecision("bf16-mixed", "cpu"), 1.0, False),  # Lightning would refuse to clip
        (MixedPrecision("16-mixed", "cpu"), None, False),  # the GradScaler
        (Precision(), 1.0, True),  # 32-true clips fused steps
    ]
    for plugin, clip, fused in cases:
        module._trainer = SimpleNamespace(precision_plugin=plugin, gradient_clip_val=clip)
        for kwargs in ({}, {"fused": None}):
            module.hparams.optimizer_kwargs = kwargs
            assert bool(module.configure_optimizers().defaults["fused"]) == fused, (plugin, clip, kwargs)
