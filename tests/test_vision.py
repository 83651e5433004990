"""course_utils.vision: patches, the from-scratch ViT (== transformers.ViTModel), the CNN,
and the offline-tested loader."""

import time

import pytest
import torch
from transformers import ViTConfig, ViTImageProcessor, ViTModel

from course_utils import vision


def small_config(**kw):
    base = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=64)
    return ViTConfig(**{**base, **kw})


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("pooling", [True, False])
def test_vit_matches_transformers(batch, pooling):
    torch.manual_seed(batch)
    hf = ViTModel(small_config(), add_pooling_layer=pooling).eval()
    ours = vision.VisionTransformer.from_hf(hf)
    x = torch.randn(batch, 3, 32, 32)
    with torch.no_grad():
        want = hf(pixel_values=x)
        got = ours(x)
    torch.testing.assert_close(got, want.last_hidden_state)
    if pooling:
        torch.testing.assert_close(ours.pool(got), want.pooler_output)
    assert vision.count_parameters(ours) == vision.count_parameters(hf)


def test_vit_matches_eager_attention_and_non_square_patch_grid():
    torch.manual_seed(0)
    cfg = small_config(image_size=48, patch_size=16, num_hidden_layers=3)
    cfg._attn_implementation = "eager"
    hf = ViTModel(cfg).eval()
    ours = vision.VisionTransformer.from_hf(hf)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(pixel_values=x).last_hidden_state)


def test_weights_really_matter():
    torch.manual_seed(0)
    hf = ViTModel(small_config()).eval()
    fresh = vision.VisionTransformer(hf.config).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(fresh(x), hf(pixel_values=x).last_hidden_state, atol=1e-3)


def test_param_count_formula():
    for pooler in (False, True):
        cfg = small_config()
        model = vision.VisionTransformer(cfg, add_pooling_layer=pooler)
        assert vision.count_parameters(model) == vision.vit_num_parameters(
            32, 8, 32, 2, 64, pooler=pooler)


def test_patchify_matches_conv2d_order():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 24)
    conv = torch.nn.Conv2d(3, 10, kernel_size=8, stride=8)
    patches = vision.patchify(x, 8)
    assert patches.shape == (2, 6, 3 * 8 * 8)
    via_linear = patches @ conv.weight.reshape(10, -1).T + conv.bias
    torch.testing.assert_close(via_linear, conv(x).flatten(2).transpose(1, 2))
    torch.testing.assert_close(vision.unpatchify(patches, 8, (16, 24)), x)
    # patch 1 (row 0, col 1) is the pixel block x[:, :, 0:8, 8:16]
    torch.testing.assert_close(patches[:, 1], x[:, :, 0:8, 8:16].reshape(2, -1))


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.zeros(3, 32, 32), "4 dimensions"),
        (torch.zeros(1, 32, 32, 3), "3 channels"),
        (torch.zeros(1, 3, 30, 32), "not divisible by the patch size"),
        (torch.zeros(1, 3, 48, 48), "expects 32x32"),
    ],
)
def test_vit_bad_input_raises(x, message):
    model = vision.VisionTransformer(small_config())
    with pytest.raises(ValueError, match=message):
        model(x)


def test_patchify_bad_input_raises():
    with pytest.raises(ValueError, match="not divisible"):
        vision.patchify(torch.zeros(1, 3, 10, 10), 4)
    with pytest.raises(ValueError, match="4 dimensions"):
        vision.patchify(torch.zeros(10, 10), 2)
    with pytest.raises(ValueError, match="patch_size"):
        vision.patchify(torch.zeros(1, 3, 8, 8), 0)


def test_conv_encoder_returns_a_sequence():
    enc = vision.ConvEncoder(hidden_size=24, widths=(8, 16, 16))
    out = enc(torch.randn(2, 3, 48, 48))
    assert out.shape == (2, 36, 24)
    with pytest.raises(ValueError, match="3 channels"):
        enc(torch.randn(2, 1, 48, 48))
    with pytest.raises(ValueError, match="not divisible"):
        enc(torch.randn(2, 3, 50, 50))
    clf = vision.ImageClassifier(enc, 24, 5)
    assert clf(torch.randn(4, 3, 48, 48)).shape == (4, 5)


def test_loader_works_offline_on_a_saved_folder(tmp_path):
    torch.manual_seed(0)
    hf = ViTModel(small_config()).eval()
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    hf.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded_processor, loaded = vision.load_vision_encoder(str(tmp_path))
    assert not loaded.training
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).last_hidden_state,
                                   hf(pixel_values=x).last_hidden_state)
    pixels = loaded_processor(images=torch.zeros(3, 64, 64).numpy().transpose(1, 2, 0) + 255,
                              return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)


def test_loader_fails_fast_and_clearly_offline(monkeypatch):
    from course_utils import runtime

    runtime.set_offline(True)
    start = time.perf_counter()
    with pytest.raises(OSError, match="vit-base-patch16-224.*network access.*local path"):
        vision.load_vision_encoder("google/vit-base-patch16-224")
    assert time.perf_counter() - start < 5


def test_loader_names_a_broken_local_folder(tmp_path):
    with pytest.raises(OSError, match="local folder.*save_pretrained"):
        vision.load_vision_encoder(str(tmp_path))
