"""Image filters the corruptions are built from (NumPy/SciPy ports of the OpenCV,
scikit-image and ImageMagick calls in Hendrycks & Dietterich's scripts).

All functions take float arrays `[H, W]` or `[H, W, C]` and never modify their input.
Border modes: OpenCV's default BORDER_REFLECT_101 is SciPy's "mirror" and NumPy's
"reflect"; scikit-image's `gaussian` defaults to SciPy's "nearest".
"""

import math

import numpy as np
from scipy import ndimage, signal


def gaussian(x, sigma, mode="nearest", truncate=4.0):
    """Spatial Gaussian blur (scikit-image `filters.gaussian` semantics), channels kept apart."""
    sigmas = (sigma, sigma) + (0,) * (x.ndim - 2)
    return ndimage.gaussian_filter(np.asarray(x, np.float64), sigma=sigmas, mode=mode, truncate=truncate)


def _cv2_gaussian_kernel_1d(ksize, sigma):
    """OpenCV's `getGaussianKernel(ksize, sigma)` for sigma > 0."""
    offsets = np.arange(ksize) - (ksize - 1) / 2.0
    kernel = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def disk_kernel(radius, alias_blur):
    """The anti-aliased disk of the benchmark's defocus blur (`disk` in make_imagenet_c.py)."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    aliased = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    aliased /= aliased.sum()
    # cv2.GaussianBlur(aliased, (ksize, ksize), alias_blur): separable, BORDER_REFLECT_101.
    k1 = _cv2_gaussian_kernel_1d(ksize, alias_blur)
    out = ndimage.correlate1d(aliased, k1, axis=0, mode="mirror")
    return ndimage.correlate1d(out, k1, axis=1, mode="mirror")


def filter2d(x, kernel):
    """`cv2.filter2D(x, -1, kernel)` per channel: correlation with BORDER_REFLECT_101 (FFT based)."""
    x = np.asarray(x, np.float64)
    kh, kw = kernel.shape
    top, left = kh // 2, kw // 2
    pad = ((top, kh - 1 - top), (left, kw - 1 - left)) + ((0, 0),) * (x.ndim - 2)
    padded = np.pad(x, pad, mode="reflect")
    flipped = kernel[::-1, ::-1]  # Correlation = convolution with the flipped kernel.
    if x.ndim == 2:
        return signal.fftconvolve(padded, flipped, mode="valid")
    return np.stack(
        [signal.fftconvolve(padded[..., c], flipped, mode="valid") for c in range(x.shape[-1])], axis=-1
    )


def box_blur(x, size=3):
    """`cv2.blur(x, (size, size))`: mean filter with BORDER_REFLECT_101."""
    sizes = (size, size) + (1,) * (x.ndim - 2)
    return ndimage.uniform_filter(np.asarray(x, np.float64), size=sizes, mode="mirror")


def _shift(image, dx, dy):
    """Translates by (dx, dy) pixels, repeating edge pixels into the uncovered border."""
    ay, ax = abs(dy), abs(dx)
    pad = ((ay, ay), (ax, ax)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    h, w = image.shape[:2]
    return padded[ay - dy : ay - dy + h, ax - dx : ax - dx + w]


def motion_blur(x, radius, sigma, angle):
    """Linear motion blur, a port of ImageMagick's `MotionBlurImage`.

    The benchmark called ImageMagick; this follows its algorithm (one-sided Gaussian
    weights over `2 * radius + 1` taps along the direction `angle`, in degrees),
    as the `imagecorruptions` package re-implemented it, with edge repetition at borders.
    """
    width = 2 * int(math.ceil(radius)) + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2.0 * sigma**2))
    weights /= weights.sum()
    point = (width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle)))
    hypot = math.hypot(*point)
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for i in range(width):
        dy = -math.ceil(i * point[0] / hypot - 0.5)
        dx = -math.ceil(i * point[1] / hypot - 0.5)
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break  # The motion left the image; the remaining taps are dropped, as in the port.
        out += weights[i] * _shift(x, dx, dy)
    return out


def clipped_zoom(x, zoom_factor):
    """Zooms into the image centre by `zoom_factor` (bilinear), keeping the size (`clipped_zoom`)."""
    h, w = x.shape[:2]
    ch, cw = int(math.ceil(h / zoom_factor)), int(math.ceil(w / zoom_factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[top : top + ch, left : left + cw]
    zoomed = ndimage.zoom(crop, (zoom_factor, zoom_factor) + (1,) * (x.ndim - 2), order=1)
    trim_top, trim_left = (zoomed.shape[0] - h) // 2, (zoomed.shape[1] - w) // 2
    return zoomed[trim_top : trim_top + h, trim_left : trim_left + w]


def rgb_to_gray(x):
    """ITU-R 601 luma, OpenCV's `COLOR_RGB2GRAY` weights; `[H, W, 3]` -> `[H, W]`."""
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def equalize_hist(x):
    """`cv2.equalizeHist` on a uint8 image."""
    hist = np.bincount(x.ravel(), minlength=256)
    nonzero = np.flatnonzero(hist)
    if nonzero.size <= 1:
        return x.copy()
    cdf = np.cumsum(hist)
    first = hist[nonzero[0]]
    scale = 255.0 / (x.size - first)
    lut = np.clip(np.round((cdf - first) * scale), 0, 255).astype(np.uint8)
    lut[: nonzero[0]] = 0
    return lut[x]


def canny(x, low, high):
    """Canny edges of a uint8 image (`cv2.Canny(x, low, high)`: 3x3 Sobel, L1 gradient norm,
    non-maximum suppression, hysteresis). Returns a bool `[H, W]` edge map."""
    x = np.asarray(x, np.float64)
    gx = ndimage.sobel(x, axis=1, mode="mirror")
    gy = ndimage.sobel(x, axis=0, mode="mirror")
    magnitude = np.abs(gx) + np.abs(gy)
    # Non-maximum suppression along the gradient direction quantized to 0/45/90/135 degrees.
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    padded = np.pad(magnitude, 1)
    h, w = magnitude.shape
    neighbours = {
        0: ((0, 1), (0, -1)),
        45: ((-1, 1), (1, -1)),
        90: ((1, 0), (-1, 0)),
        135: ((1, 1), (-1, -1)),
    }
    bins = (np.round(angle / 45.0).astype(int) % 4) * 45
    keep = np.zeros_like(magnitude, dtype=bool)
    for direction, ((ay, ax), (by, bx)) in neighbours.items():
        a = padded[1 + ay : 1 + ay + h, 1 + ax : 1 + ax + w]
        b = padded[1 + by : 1 + by + h, 1 + bx : 1 + bx + w]
        keep |= (bins == direction) & (magnitude >= a) & (magnitude >= b)
    thin = np.where(keep, magnitude, 0.0)
    strong = thin > high
    weak = thin > low
    labels, count = ndimage.label(weak, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros_like(weak)
    has_strong = np.zeros(count + 1, dtype=bool)
    has_strong[np.unique(labels[strong])] = True
    has_strong[0] = False
    return has_strong[labels]
