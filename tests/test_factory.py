import pytest
import torch
import torchvision

from seglight.model.factory import WeightsUnavailableError, create_model


def test_logits_shape_and_no_activation():
    model = create_model("unet", "resnet18", None, 3, 5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5, 64, 64)
    assert out.min() < 0  # raw logits, not probabilities


def test_local_torchvision_weights_load_into_encoder(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)  # torchvision style, with the fc head
    model = create_model("Unet", "resnet18", str(path), 3, 2)
    torch.testing.assert_close(model.encoder.conv1.weight, reference.conv1.weight)
    torch.testing.assert_close(model.encoder.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_torchvision_densenet_files_with_legacy_key_names_load(tmp_path):
    """torchvision's DenseNet files (densenet121-a639ec97.pth) name a layer's parts "norm.1", not "norm1"."""
    reference = torchvision.models.densenet121(weights=None)
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2.").replace("relu1.", "relu.1."): v
              for k, v in reference.state_dict().items()}  # fmt: skip
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet121.pth"
    torch.save(legacy, path)
    model = create_model("Unet", "densenet121", str(path), 3, 2)
    layer = model.encoder.features.denseblock4.denselayer16
    torch.testing.assert_close(layer.norm1.running_var, reference.features.denseblock4.denselayer16.norm1.running_var)
    torch.testing.assert_close(layer.conv2.weight, reference.features.denseblock4.denselayer16.conv2.weight)


def test_prefixed_state_dict_loads(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    model = create_model("Unet", "resnet18", str(path), 3, 2)
    torch.testing.assert_close(model.encoder.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_unrelated_weights_file_fails(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsUnavailableError, match="none of its 1 keys match"):
        create_model("Unet", "resnet18", str(path), 3, 2)


@pytest.mark.parametrize("saved, built", [("resnet34", "resnet18"), ("resnet18", "resnet34")])
def test_another_encoders_weights_are_refused(tmp_path, saved, built):
    """resnet34's weights hold all of resnet18's keys and more: half an encoder loaded without a word."""
    path = tmp_path / f"{saved}.pth"
    torch.save(getattr(torchvision.models, saved)(weights=None).state_dict(), path)
    with pytest.raises(WeightsUnavailableError, match=rf"{saved}.pth: not weights of this encoder: it lacks"):
        create_model("Unet", built, str(path), 3, 2)


def test_weights_for_other_input_channels_load_but_the_first_conv(tmp_path, caplog):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    with caplog.at_level("WARNING"):
        model = create_model("Unet", "resnet18", str(path), 4, 2)
    assert "shapes differ: ['conv1.weight']" in caplog.text
    torch.testing.assert_close(model.encoder.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_local_weights_load_into_an_encoder_whose_load_state_dict_takes_no_strict(tmp_path):
    """smp's mit_b* encoders override load_state_dict(state_dict) without strict=."""
    reference = create_model("FPN", "mit_b0", None, 3, 2)
    path = tmp_path / "mit_b0.pth"
    torch.save(reference.encoder.state_dict(), path)
    model = create_model("FPN", "mit_b0", str(path), 3, 2)
    for key, value in reference.encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value)


def test_missing_weights_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model("Unet", "resnet18", str(tmp_path / "nope.pth"), 3, 2)


def test_hub_weights_offline_names_local_file_option(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"encoder.weights=/path/to/weights.pth"):
        create_model("Unet", "resnet18", "imagenet", 3, 2)


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError, match="UnetPlusPlus"):
        create_model("unetx", "resnet18")


@pytest.mark.parametrize(
    ("arch", "kwargs", "unknown"),
    [
        ("FPN", {"decoder_pyramid_chanels": 64}, "decoder_pyramid_chanels"),  # a typo
        ("Linknet", {"decoder_pyramid_channels": 64}, "decoder_pyramid_channels"),  # another arch's option
    ],
)
def test_model_kwargs_the_arch_would_drop_are_an_error(arch, kwargs, unknown):
    # smp hands kwargs it does not know to the encoder, and its own encoders drop them without a word
    with pytest.raises(ValueError, match=rf"{unknown}.*{arch}") as error:
        create_model(arch, "resnet18", None, 3, 2, **kwargs)
    assert "~model.model_kwargs" in str(error.value)


def test_model_kwargs_the_arch_takes_are_used():
    model = create_model("FPN", "resnet18", None, 3, 2, decoder_pyramid_channels=32)
    assert model.decoder.p5.out_channels == 32
    create_model("Unet", "resnet18", None, 3, 2, decoder_use_batchnorm=True)  # popped by name in smp's __init__
    # not named by Unet's __init__ but by smp's get_encoder, which dilates the encoder with it
    assert create_model("Unet", "resnet18", None, 3, 2, output_stride=16).encoder.output_stride == 16


@pytest.mark.parametrize("loader", ["load_module", "load_from_checkpoint"])
def test_a_checkpoint_saved_with_dropped_kwargs_still_loads(tmp_path, loader):
    # runs before the check saved such kwargs in their hyperparameters; they never changed the model
    import pytorch_lightning as pl

    from seglight.model.checkpoint import load_module
    from seglight.model.module import SegmentationModule

    module = SegmentationModule(["a", "b"], arch="Linknet", encoder_name="resnet18").eval()
    hp = {**module.hparams, "model_kwargs": {"decoder_pyramid_channels": 64}}
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": hp, "pytorch-lightning_version": pl.__version__}
    torch.save(ckpt, tmp_path / "old.ckpt")
    if loader == "load_module":
        loaded = load_module(tmp_path / "old.ckpt")
    else:
        loaded = SegmentationModule.load_from_checkpoint(tmp_path / "old.ckpt").eval()
        assert "decoder_pyramid_channels" not in loaded.hparams.model_kwargs
        with pytest.raises(ValueError, match="decoder_pyramid_channels"):  # kwargs the caller gives are checked
            SegmentationModule.load_from_checkpoint(tmp_path / "old.ckpt", model_kwargs=hp["model_kwargs"])
        with pytest.raises(FileNotFoundError):
            SegmentationModule.load_from_checkpoint(tmp_path / "missing.ckpt")
        with pytest.raises(ValueError, match="decoder_pyramid_channels"):  # a new module is still refused them
            SegmentationModule(["a", "b"], arch="Linknet", model_kwargs={"decoder_pyramid_channels": 64})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module(x))
