"""The 19 common corruptions of ImageNet-C / CIFAR-10-C at severities 1-5.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (arXiv 1903.12261), §3: 15 benchmark
corruptions (noise, blur, weather, digital) plus 4 held-out ones. Each function
below re-implements the authors' recipe (hendrycks/robustness,
`make_cifar_c.py` / `make_imagenet_c.py`) with NumPy, SciPy and Pillow, reading
its strengths from `supcon.evaluation.corruption_params` (CIFAR-10-C values for
small images, ImageNet-C values for large ones). The `imagecorruptions` package
was not used: under NumPy 2 / scikit-image 0.26 its fog, glass blur and Gaussian
blur raise, and it draws from NumPy's global random state.

Differences from the benchmark's scripts (also in `APPROXIMATE_CORRUPTIONS`):
frost uses a procedural texture instead of photographs; motion blur (and the
streaks of snow) use a NumPy port of ImageMagick's motion blur; spatter's
OpenCV edge/distance/equalization steps are re-implemented. Everything else
follows the scripts operation by operation, generalized from the fixed 32 / 224
pixel sizes to the actual image size. Not reproduced: make_imagenet_c.py also
stores every corrupted ImageNet-C image as a JPEG at quality 85 (l.119,
`DistortImageFolder.__getitem__`), a second encoding on top of each corruption;
we return the corrupted pixels as CIFAR-10-C stores them (uint8, no encoding).

Randomness: image `i` of a call draws from
`np.random.default_rng([seed, corruption_index, index_offset + i])`, so a
corrupted image depends only on the seed, the corruption, the severity and the
image's position in the test set, not on batching. The severity is left out of
the key on purpose ("common random numbers"): the five severities of an image
share their noise, flakes and warps and differ only in strength, which makes
accuracy-vs-severity curves smoother than independent draws would.
"""

import io

import numpy as np
from matplotlib import colors as mcolors
from PIL import Image
from scipy import ndimage

from supcon.evaluation import _filters, _textures
from supcon.evaluation import corruption_params as cp


def _gaussian_noise(x, c, rng, preset):
    return x + rng.normal(size=x.shape, scale=c[0])


def _shot_noise(x, c, rng, preset):
    return rng.poisson(x * c[0]) / float(c[0])


def _impulse_noise(x, c, rng, preset):
    # skimage.util.random_noise(mode="s&p", amount=c): each value flips with
    # probability `amount`, half of the flips to 1 (salt), half to 0 (pepper).
    flip = rng.random(x.shape) < c[0]
    salt = rng.random(x.shape) < 0.5
    out = x.copy()
    out[flip & salt] = 1.0
    out[flip & ~salt] = 0.0
    return out


def _speckle_noise(x, c, rng, preset):
    return x + x * rng.normal(size=x.shape, scale=c[0])


def _gaussian_blur(x, c, rng, preset):
    return _filters.gaussian(x, c[0])


def _glass_blur(x, c, rng, preset):
    sigma, delta, iterations = c[0], int(c[1]), int(c[2])
    blurred = np.uint8(np.clip(_filters.gaussian(x, sigma), 0, 1) * 255)
    h, w = blurred.shape[:2]
    # Locally shuffle pixels: walk the image bottom-right to top-left, swapping each
    # pixel with a random neighbour within `delta`. Pixels are packed into Python
    # ints so the sequential swaps (the recipe's inner loop) run at list speed.
    packed = (blurred[..., 0].astype(np.int64) << 16) | (blurred[..., 1].astype(np.int64) << 8) | blurred[..., 2]
    flat = packed.ravel().tolist()
    rows = range(h - delta, delta, -1)
    cols = range(w - delta, delta, -1)
    offsets = rng.integers(-delta, delta, size=(iterations, len(rows), len(cols), 2)).tolist()
    for it in range(iterations):
        for r_i, row in enumerate(rows):
            row_offsets = offsets[it][r_i]
            for c_i, col in enumerate(cols):
                dx, dy = row_offsets[c_i]
                a = row * w + col
                b = (row + dy) * w + col + dx
                flat[a], flat[b] = flat[b], flat[a]
    packed = np.asarray(flat, np.int64).reshape(h, w)
    shuffled = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1)
    return _filters.gaussian(shuffled / 255.0, sigma)


def _defocus_blur(x, c, rng, preset):
    return _filters.filter2d(x, _filters.disk_kernel(radius=c[0], alias_blur=c[1]))


def _motion_blur(x, c, rng, preset):
    angle = rng.uniform(-45, 45)
    return _filters.motion_blur(x, radius=c[0], sigma=c[1], angle=angle)


def _zoom_blur(x, c, rng, preset):
    factors = np.arange(c[0], c[1], c[2])
    out = np.zeros_like(x)
    for factor in factors:
        out += _filters.clipped_zoom(x, factor)
    return (x + out) / (len(factors) + 1)


def _fog(x, c, rng, preset):
    h, w = x.shape[:2]
    # 32 for CIFAR-10-C, 256 for ImageNet-C (cp.FOG_MAPSIZE: make_cifar_c.py l.63,
    # make_imagenet_c.py l.182); a 256 map cropped to 32 px would be a nearly flat corner.
    mapsize = cp.fog_mapsize(h, w)
    max_val = x.max()
    fog = _textures.plasma_fractal(rng, mapsize, wibble_decay=c[1])[:h, :w, None]
    return (x + c[0] * fog) * max_val / (max_val + c[0])


def _frost(x, c, rng, preset):
    frost = _textures.frost_layer(rng, x.shape[0], x.shape[1]) / 255.0
    return c[0] * x + c[1] * frost


def _snow(x, c, rng, preset):
    h, w = x.shape[:2]
    layer = rng.normal(size=(h, w), loc=c[0], scale=c[1])
    layer = _filters.clipped_zoom(layer[..., None], c[2])[..., 0]
    layer[layer < c[3]] = 0
    # The recipe motion-blurs an 8-bit greyscale picture of the flakes and reads it back as 8 bits.
    layer = np.uint8(np.clip(layer, 0, 1) * 255) / 255.0
    layer = _filters.motion_blur(layer, radius=c[4], sigma=c[5], angle=rng.uniform(-135, -45))
    layer = (np.round(np.clip(layer, 0, 1) * 255) / 255.0)[..., None]
    gray = _filters.rgb_to_gray(x)[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2)


def _brightness(x, c, rng, preset):
    hsv = mcolors.rgb_to_hsv(np.clip(x, 0, 1))
    hsv[..., 2] = np.clip(hsv[..., 2] + c[0], 0, 1)
    return mcolors.hsv_to_rgb(hsv)


def _contrast(x, c, rng, preset):
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c[0] + means


def _saturate(x, c, rng, preset):
    hsv = mcolors.rgb_to_hsv(np.clip(x, 0, 1))
    hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return mcolors.hsv_to_rgb(hsv)


def _elastic_transform(x, c, rng, preset):
    h, w = x.shape[:2]
    # Table entries are in the script's units (32 or 244 px per unit), for its image side.
    scale = cp.ELASTIC_UNIT[preset] * min(h, w) / cp.ELASTIC_REFERENCE_SIDE[preset]
    alpha, sigma, affine = c[0] * scale, c[1] * scale, c[2] * scale
    # Random affine: three control points around the centre move by up to `affine` px
    # (cv2.getAffineTransform + warpAffine with BORDER_REFLECT_101; points are (x, y)).
    centre = np.float32((h, w)) // 2
    square = min(h, w) // 3
    src = np.float64([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    dst = src + rng.uniform(-affine, affine, size=src.shape)
    forward = np.linalg.solve(np.c_[src, np.ones(3)], dst).T  # [2, 3]: dst = A @ src + b.
    inverse_a = np.linalg.inv(forward[:, :2])
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    src_x = inverse_a[0, 0] * (xx - forward[0, 2]) + inverse_a[0, 1] * (yy - forward[1, 2])
    src_y = inverse_a[1, 0] * (xx - forward[0, 2]) + inverse_a[1, 1] * (yy - forward[1, 2])
    warped = np.stack(
        [ndimage.map_coordinates(x[..., k], [src_y, src_x], order=1, mode="mirror") for k in range(3)], -1
    )
    # Elastic part: a smoothed uniform random displacement field scaled by alpha.
    dx = _filters.gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = _filters.gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    return np.stack(
        [ndimage.map_coordinates(warped[..., k], [yy + dy, xx + dx], order=1, mode="reflect") for k in range(3)],
        -1,
    )


def _pixelate(x, c, rng, preset):
    h, w = x.shape[:2]
    image = Image.fromarray(np.uint8(np.clip(x, 0, 1) * 255))
    image = image.resize((max(1, int(w * c[0])), max(1, int(h * c[0]))), Image.BOX)
    image = image.resize((w, h), Image.BOX)
    return np.asarray(image, np.float64) / 255.0


def _jpeg_compression(x, c, rng, preset):
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.clip(x, 0, 1) * 255)).save(buffer, "JPEG", quality=int(c[0]))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float64) / 255.0


def _spatter(x, c, rng, preset):
    loc, scale, sigma, threshold, intensity, mud = c
    liquid = rng.normal(size=x.shape[:2], loc=loc, scale=scale)
    liquid = _filters.gaussian(liquid, sigma)
    liquid[liquid < threshold] = 0
    if mud == 0:
        # Water drops: shade each drop by the (equalized, embossed) distance to its rim.
        liquid_u8 = np.uint8(np.clip(liquid, 0, 1) * 255)
        edges = _filters.canny(liquid_u8, 50, 150)
        dist = ndimage.distance_transform_edt(~edges)
        dist = np.minimum(dist, 20)
        dist = np.uint8(_filters.box_blur(dist, 3))
        dist = _filters.equalize_hist(dist)
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float64)
        dist = np.clip(np.round(ndimage.correlate(dist.astype(np.float64), emboss, mode="mirror")), 0, 255)
        dist = _filters.box_blur(dist, 3)
        m = liquid_u8 * dist  # The script multiplies the uint8 layer, so values are 0-255 scaled.
        m = m / max(m.max(), 1e-8) * intensity
        colour = np.array([175, 238, 238]) / 255.0  # Pale turquoise water.
        return x + m[..., None] * colour
    # Mud: opaque brown blobs where the smoothed liquid mask is dense.
    m = _filters.gaussian((liquid > threshold).astype(np.float64), intensity)
    m[m < 0.8] = 0
    colour = np.array([63, 42, 20]) / 255.0  # Mud brown.
    return x * (1 - m[..., None]) + colour * m[..., None]


_CORRUPTION_FNS = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
    "speckle_noise": _speckle_noise,
    "gaussian_blur": _gaussian_blur,
    "spatter": _spatter,
    "saturate": _saturate,
}


def corrupt(images, name, severity, *, seed=0, preset=None, index_offset=0):
    """Applies one benchmark corruption at one severity (Hendrycks & Dietterich 2019, §3).

    Args:
      images: uint8 or float array, `[H, W, 3]` or `[N, H, W, 3]`, values 0-255.
      name: str, one of `ALL_CORRUPTIONS` (the 15 benchmark corruptions and
        `speckle_noise`, `gaussian_blur`, `spatter`, `saturate`).
      severity: int in 1..5.
      seed: non-negative int, default 0. Same seed, same output.
      preset: `"cifar10"`, `"imagenet"` or None (default: CIFAR-10-C parameters
        when the longer side is at most 64 px, ImageNet-C parameters otherwise).
      index_offset: int, position of `images[0]` in its data set; image `i` uses
        the random stream of position `index_offset + i`.

    Returns:
      float32 array of the input's shape, values in [0, 255] rounded down to whole
      numbers as in the benchmark's stored uint8 images.

    Example:
      >>> image = np.full((32, 32, 3), 128, np.uint8)
      >>> corrupt(image, "contrast", 5).shape
      (32, 32, 3)
    """
    cp.check_corruption_name(name)
    cp.check_severity(severity)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer. Received: seed={seed!r}")
    array = np.asarray(images)
    single = array.ndim == 3
    if single:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"`images` must have shape [H, W, 3] or [N, H, W, 3]. Received: images.shape={np.shape(images)}"
        )
    if preset is None:
        preset = cp.preset_for_image_size(array.shape[1], array.shape[2])
    params = cp.corruption_params(name, severity, preset)
    fn = _CORRUPTION_FNS[name]
    corruption_index = cp.ALL_CORRUPTIONS.index(name)
    out = np.empty(array.shape, np.float32)
    for i, image in enumerate(array):
        rng = np.random.default_rng([int(seed), corruption_index, int(index_offset) + i])
        corrupted = fn(np.asarray(image, np.float64) / 255.0, params, rng, preset)
        # 1e-4 keeps exact values (e.g. an untouched 128) from rounding down to 127.
        out[i] = np.floor(np.clip(corrupted, 0.0, 1.0) * 255.0 + 1e-4)
    return out[0] if single else out
