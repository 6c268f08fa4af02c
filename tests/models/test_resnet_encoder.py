"""Tests for supcon.models.resnet (supcon/models/resnet_encoder.py): structure, counts, shapes."""

import keras
import numpy as np
import pytest

from supcon.models import resnet
from supcon.models.resnet_encoder import IMAGENET_MEAN
from supcon.models.resnet_encoder import IMAGENET_STD

# torchvision `resnet*` parameter counts minus the final fc layer (F * 1000 + 1000):
# resnet18 11,689,512 - 513,000; resnet34 21,797,672 - 513,000; resnet50 25,557,032 -
# 2,049,000; resnet101 44,549,160 - 2,049,000; resnet152 60,192,808 - 2,049,000.
TORCHVISION_NO_FC = {18: 11_176_512, 34: 21_284_672, 50: 23_508_032, 101: 42_500_160, 152: 58_143_808}

_BLOCKS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def reference_trainable_count(depth, version="v1", stem="imagenet", width=1.0):
    """Trainable parameters counted by hand from He et al. 2016 (Table 1, Fig. 5; 1603.05027)."""
    block, layout = _BLOCKS[depth]
    w = lambda f: max(1, int(round(f * width)))  # noqa: E731
    conv = lambda k, cin, cout: k * k * cin * cout  # noqa: E731  (no bias)
    bn = lambda c: 2 * c  # noqa: E731  (gamma, beta; moving stats are not trainable)
    stem_c = w(64)
    total = conv(7 if stem == "imagenet" else 3, 3, stem_c) + (bn(stem_c) if version == "v1" else 0)
    cin = stem_c
    for stage, (filters, n) in enumerate(zip((64, 128, 256, 512), layout)):
        f = w(filters)
        for b in range(n):
            stride = 2 if (stage > 0 and b == 0) else 1
            cout = f if block == "basic" else 4 * f
            if block == "basic":
                if version == "v1":
                    total += conv(3, cin, f) + bn(f) + conv(3, f, f) + bn(f)
                else:
                    total += bn(cin) + conv(3, cin, f) + bn(f) + conv(3, f, f)
            else:
                if version == "v1":
                    total += conv(1, cin, f) + bn(f) + conv(3, f, f) + bn(f) + conv(1, f, cout) + bn(cout)
                else:
                    total += bn(cin) + conv(1, cin, f) + bn(f) + conv(3, f, f) + bn(f) + conv(1, f, cout)
            if stride != 1 or cin != cout:
                total += conv(1, cin, cout) + (bn(cout) if version == "v1" else 0)
            cin = cout
    if version == "v2":
        total += bn(cin)
    return total


def trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


@pytest.mark.parametrize("depth", sorted(TORCHVISION_NO_FC))
def test_v1_imagenet_counts_match_torchvision(depth):
    model = resnet(depth, input_shape=(224, 224, 3))
    assert trainable_count(model) == TORCHVISION_NO_FC[depth]
    assert reference_trainable_count(depth) == TORCHVISION_NO_FC[depth]


def test_issue_counts():
    assert trainable_count(resnet(50)) == 23_508_032
    # torchvision resnet18 with conv1 = 3x3 (a 1x1 conv+BN shortcut where the shape changes).
    assert trainable_count(resnet(18, stem="cifar")) == 11_168_832


@pytest.mark.parametrize(
    "depth,version,stem,width",
    [(200, "v1", "imagenet", 1.0), (18, "v2", "cifar", 1.0), (34, "v2", "imagenet", 0.5), (50, "v2", "imagenet", 1.0),
     (152, "v2", "cifar", 0.25), (200, "v2", "imagenet", 0.25), (101, "v1", "cifar", 2.0)],
)
def test_counts_match_hand_count(depth, version, stem, width):
    model = resnet(depth, version=version, stem=stem, width_multiplier=width)
    assert trainable_count(model) == reference_trainable_count(depth, version, stem, width)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_convolutions_have_no_bias(version):
    model = resnet(50, version=version)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(not layer.use_bias for layer in convs)


def test_v1_zero_initializes_last_bn_gamma_of_each_block():
    model = resnet(50, width_multiplier=0.25)
    last_bns = [layer for layer in model.layers if layer.name.endswith("_bn3")]
    assert len(last_bns) == 16
    for layer in last_bns:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.gamma), 0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("stage1_block0_bn1").gamma), 1.0)
    basic = resnet(18, width_multiplier=0.25)
    assert all(not np.any(keras.ops.convert_to_numpy(l.gamma)) for l in basic.layers if l.name.endswith("_bn2"))


def test_v2_is_pre_activation():
    names = [layer.name for layer in resnet(18, version="v2").layers]
    assert "stem_bn" not in names and "post_bn" in names
    assert "stage1_block0_preact_bn" in names and "stage4_block1_preact_bn" in names
    assert not any(name.endswith("_shortcut_bn") for name in names)


@pytest.mark.parametrize(
    "depth,version,stem,expected_dim",
    [(18, "v1", "cifar", 64), (18, "v2", "imagenet", 64), (50, "v1", "cifar", 256), (50, "v2", "imagenet", 256)],
)
def test_forward_shapes(depth, version, stem, expected_dim):
    model = resnet(depth, version=version, stem=stem, width_multiplier=0.125, input_shape=(32, 32, 3))
    assert model.output_shape == (None, expected_dim)
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(model(images, training=False))
    assert out.shape == (2, expected_dim) and np.all(np.isfinite(out))


def test_dynamic_input_size_and_stage_strides():
    model = resnet(18, stem="imagenet", width_multiplier=0.125)
    assert model.input_shape == (None, None, None, 3)
    stage4 = keras.Model(model.input, model.get_layer("stage4_block1_out").output)
    assert stage4(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 2, 2, 64)  # 64 / 32
    cifar = resnet(18, stem="cifar", width_multiplier=0.125)
    stage4 = keras.Model(cifar.input, cifar.get_layer("stage4_block1_out").output)
    assert stage4(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 4, 4, 64)  # 32 / 8


def test_first_layer_standardizes_0_255_images():
    model = resnet(18, width_multiplier=0.125, input_shape=(4, 4, 3))
    rescale = keras.Model(model.input, model.get_layer("rescale").output)
    images = np.random.default_rng(1).uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    expected = (images - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rescale(images)), expected, rtol=1e-5, atol=1e-5)


def test_synchronized_bn_flag():
    model = resnet(18, width_multiplier=0.125, synchronized_bn=True)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(layer.synchronized for layer in bns)
    assert bns[0].momentum == 0.9 and bns[0].epsilon == 1e-5


def test_config_round_trip():
    model = resnet(18, version="v2", width_multiplier=0.125, input_shape=(8, 8, 3))
    clone = keras.Model.from_config(model.get_config())
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert trainable_count(clone) == trainable_count(model)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depth": 20}, "depth=20"),
        ({"depth": 18, "version": "v3"}, "version='v3'"),
        ({"depth": 18, "stem": "tiny"}, "stem='tiny'"),
        ({"depth": 18, "width_multiplier": 0}, "width_multiplier=0"),
        ({"depth": 18, "input_shape": (32, 32, 1)}, "input_shape="),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        resnet(**kwargs)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_forward_under_mixed_precision(policy, restore_policy):
    keras.config.set_dtype_policy(policy)
    model = resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(16, 16, 3))
    out = model(np.full((2, 16, 16, 3), 200.0, "float32"), training=True)
    assert out.dtype == policy.split("_")[1]
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))))
