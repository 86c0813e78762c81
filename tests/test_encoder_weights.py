"""EfficientNet-Lite0 ImageNet weights map onto timm's architecture and classify real photos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")

from open_clip.transform import PreprocessCfg, image_transform_v2  # noqa: E402
from PIL import Image  # noqa: E402

from modgap.embed import models  # noqa: E402

PHOTOS = Path(__file__).parent / "fixtures" / "photos"
# ImageNet-1k indices accepted in the top-5 for each photo.
EXPECTED = {
    "cat_chelsea.jpg": {281, 282, 283, 284, 285},  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee.jpg": {967},  # espresso
    "rocket.jpg": {657},  # missile
}


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    models.load_efficientnet_lite0_imagenet(model)
    return model


@pytest.mark.parametrize("size", [models.IMAGE_SIZE, 160])
def test_photos_classify_correctly(classifier: torch.nn.Module, size: int) -> None:
    # The same eval transform open_clip builds for the registered model (resize, centre crop, normalise).
    preprocess = image_transform_v2(PreprocessCfg(size=size), is_train=False)
    batch = torch.stack([preprocess(Image.open(PHOTOS / name).convert("RGB")) for name in EXPECTED])
    with torch.no_grad():
        top5 = classifier(batch).topk(5, dim=-1).indices.tolist()
    for (name, accepted), predicted in zip(EXPECTED.items(), top5, strict=True):
        assert accepted & set(predicted), f"{name} at {size}px: top-5 {predicted} misses {sorted(accepted)}"


def test_mapping_fills_open_clip_trunk() -> None:
    trunk = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    before = trunk.conv_stem.weight.clone()
    models.load_efficientnet_lite0_imagenet(trunk)  # no classifier: the 1000-class head is skipped
    assert not torch.equal(before, trunk.conv_stem.weight)


def test_mapping_fails_loudly_on_other_architecture() -> None:
    wrong = timm.create_model("efficientnet_b0", pretrained=False)  # has SE blocks: keys cannot all map
    with pytest.raises(models.WeightMappingError, match="problem"):
        models.load_efficientnet_lite0_imagenet(wrong)


def test_register_project_models_offline_and_idempotent() -> None:
    assert models.register_project_models() == [models.MODEL_NAME]
    assert models.register_project_models() == [models.MODEL_NAME]
    cfg = open_clip.get_model_config(models.MODEL_NAME)
    assert cfg["vision_cfg"]["timm_model_name"] == "efficientnet_lite0"
    assert Path(cfg["text_cfg"]["hf_model_name"], "config.json").is_file()
    assert open_clip.list_models().count(models.MODEL_NAME) == 1
