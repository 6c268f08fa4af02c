"""Random textures for the weather corruptions: the fog's plasma fractal and a
procedural frost layer that stands in for the benchmark's frost photographs."""

import numpy as np

from supcon.evaluation import _filters


def plasma_fractal(rng, mapsize=256, wibble_decay=3.0):
    """Diamond-square height map in [0, 1] (`plasma_fractal` of make_imagenet_c.py), seeded.

    Args:
      rng: `np.random.Generator`.
      mapsize: int, a power of two, side of the square map.
      wibble_decay: float, how fast the random perturbation shrinks per octave
        (smaller -> rougher, denser fog).

    Returns:
      float64 `[mapsize, mapsize]`.
    """
    maparray = np.zeros((mapsize, mapsize), np.float64)
    stepsize = mapsize
    wibble = 100.0

    def wibbled_mean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        # Squares: centre of each square = mean of its corners + noise.
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        square_sum = corners + np.roll(corners, shift=-1, axis=0)
        square_sum += np.roll(square_sum, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbled_mean(square_sum)
        # Diamonds: edge midpoints = mean of neighbouring corners and centres + noise.
        centres = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        left_sum = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbled_mean(left_sum)
        top_sum = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbled_mean(top_sum)
        stepsize //= 2
        wibble /= wibble_decay
    maparray -= maparray.min()
    return maparray / maparray.max()


# Colour statistics of the five frost photographs the benchmark samples from
# (frost1.png .. frost5.jpg of hendrycks/robustness, RGB, 0-255): the mean of
# their per-image channel means and of their per-image channel standard deviations.
FROST_MEAN_RGB = np.array([146.0, 167.0, 180.0])
FROST_STD_RGB = np.array([32.0, 28.0, 28.0])


def frost_layer(rng, height, width):
    """Procedural frost: ice needles over a cloudy plasma background, tinted pale blue.

    A documented substitute for the six frost photographs of ImageNet-C / CIFAR-10-C
    (not redistributable here, and nothing downloads at run time). The photographs
    show bright, bluish ice crystals made of thin straight needles of many lengths
    and orientations; this draws 6 needles per 100 pixels of area (at most 4000) (lengths 4-30% of
    the image side, 1-2 px wide after blurring) over a low-frequency plasma cloud,
    then matches the photographs' mean colour and contrast (`FROST_MEAN_RGB`,
    `FROST_STD_RGB`). The output is an approximation: error rates on frost are
    not comparable with published frost numbers.

    Args:
      rng: `np.random.Generator`.
      height, width: ints, size of the layer.

    Returns:
      float64 `[height, width, 3]` in [0, 255].
    """
    side = max(height, width)
    mapsize = max(256, 1 << (side - 1).bit_length())
    cloud = plasma_fractal(rng, mapsize, wibble_decay=2.0)[:height, :width]

    needles = np.zeros((height, width), np.float64)
    count = int(np.clip(0.06 * height * width, 8, 4000))
    lengths = rng.uniform(0.04, 0.3, count) * side
    angles = rng.uniform(0.0, np.pi, count)
    y0 = rng.uniform(0, height, count)
    x0 = rng.uniform(0, width, count)
    strength = rng.uniform(0.3, 1.0, count)
    steps = np.linspace(-0.5, 0.5, max(8, int(2 * lengths.max())))
    ys = (y0[:, None] + np.outer(lengths * np.sin(angles), 1.0) * steps[None, :]).round().astype(int)
    xs = (x0[:, None] + np.outer(lengths * np.cos(angles), 1.0) * steps[None, :]).round().astype(int)
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    values = np.broadcast_to(strength[:, None], ys.shape)
    np.maximum.at(needles, (ys[inside], xs[inside]), values[inside])
    needles = _filters.gaussian(needles, 0.5 if side <= 64 else 0.8)

    texture = 0.5 * cloud + needles
    texture = (texture - texture.mean()) / (texture.std() + 1e-8)
    layer = FROST_MEAN_RGB + texture[..., None] * FROST_STD_RGB
    return np.clip(layer, 0.0, 255.0)
