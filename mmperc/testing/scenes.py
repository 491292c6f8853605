"""Synthetic segmentation scenes: textured shapes on a banded background, with labels."""
import colorsys
import math
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = ['TEXTURES', 'class_appearance', 'make_scene', 'add_ignore_boundaries']

#: Texture kinds; class ``c`` uses ``TEXTURES[c % len(TEXTURES)]``.
TEXTURES = ('flat', 'stripes', 'checker', 'dots', 'waves')

_GOLDEN = (math.sqrt(5) - 1) / 2


@lru_cache(maxsize=None)
def class_appearance(label: int) -> Tuple[str, int, float, np.ndarray, np.ndarray]:
    """The fixed look of a class, the same in every scene, dataset and seed.

    Hues are spread by the golden ratio and textures cycle through :data:`TEXTURES`, so
    neighbouring class ids differ in both colour and texture.

    Args:
        label (int): Class id, ``0 <= label < 255``.

    Returns:
        tuple: ``(texture, period, angle, colour_a, colour_b)``: the texture kind, its period
        in pixels (4 to 10), the stripe angle in radians and two float32 RGB colours in
        ``[0, 255]`` that the texture alternates between.
    """
    hue = (label * _GOLDEN) % 1.0
    saturation = 0.45 + 0.5 * ((label * 0.37) % 1.0)
    value = 0.55 + 0.4 * ((label * 0.71) % 1.0)
    colour_a = np.array(colorsys.hsv_to_rgb(hue, saturation, value), np.float32) * 255
    colour_b = colour_a * 0.45
    texture = TEXTURES[label % len(TEXTURES)]
    period = 4 + (label * 3) % 7
    angle = (label % 4) * math.pi / 4
    return texture, period, angle, colour_a, colour_b


def _texture_field(label: int, xs: np.ndarray, ys: np.ndarray,
                   phase: np.ndarray) -> np.ndarray:
    """Blend weight in ``[0, 1]`` of ``colour_b`` at pixels ``(xs, ys)`` for class ``label``."""
    texture, period, angle, _, _ = class_appearance(label)
    xs = xs + phase[0] * period
    ys = ys + phase[1] * period
    if texture == 'flat':
        return np.zeros_like(xs)
    if texture == 'stripes':
        along = xs * math.cos(angle) + ys * math.sin(angle)
        return (np.sin(2 * math.pi * along / period) > 0).astype(np.float32)
    if texture == 'checker':
        return ((np.floor(xs / period) + np.floor(ys / period)) % 2).astype(np.float32)
    if texture == 'dots':
        dx = xs % period - period / 2
        dy = ys % period - period / 2
        return (dx * dx + dy * dy < (period / 3.5)**2).astype(np.float32)
    # waves
    return 0.5 + 0.5 * np.sin(2 * math.pi * xs / period + 2 * np.sin(math.pi * ys / period))


def _shape_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A filled rectangle, ellipse or star-shaped polygon at a random place (bool HxW)."""
    mask = np.zeros((height, width), np.uint8)
    side = min(height, width)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    rx, ry = rng.uniform(0.08, 0.3, size=2) * side
    angle = rng.uniform(0, 180) if rng.random() < 0.5 else 0.0
    kind = rng.integers(3)
    if kind == 0:
        box = cv2.boxPoints(((cx, cy), (2 * rx, 2 * ry), angle))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    elif kind == 1:
        cv2.ellipse(mask, (int(cx), int(cy)), (max(int(rx), 1), max(int(ry), 1)), angle, 0,
                    360, 1, -1)
    else:
        num = rng.integers(3, 8)
        thetas = np.sort(rng.uniform(0, 2 * math.pi, size=num))
        radii = rng.uniform(0.5, 1.0, size=num) * max(rx, ry)
        pts = np.stack([cx + radii * np.cos(thetas), cy + radii * np.sin(thetas)], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


def _background(rng: np.random.Generator, height: int, width: int,
                bands: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Horizontal bands of the given classes (top to bottom) split by wavy lines.

    Returns:
        tuple: ``(label, instance)``, both HxW; the instance id of band ``k`` is ``k``.
    """
    instance = np.zeros((height, width), np.int32)
    if len(bands) > 1:
        rows = np.arange(height, dtype=np.float32)[:, None]
        cols = np.arange(width, dtype=np.float32)[None, :]
        splits = np.sort(rng.uniform(0.2, 0.8, size=len(bands) - 1)) * height
        for split in splits:
            amplitude = rng.uniform(0.0, 0.06) * height
            wavelength = rng.uniform(0.5, 2.0) * width
            line = split + amplitude * np.sin(2 * math.pi * cols / wavelength
                                              + rng.uniform(0, 2 * math.pi))
            instance += (rows >= line).astype(np.int32)
    label = np.asarray(bands, np.uint8)[instance]
    return label, instance


def add_ignore_boundaries(label: np.ndarray, width: int = 1, ignore_index: int = 255) -> np.ndarray:
    """Mark class boundaries as ignored, as in Pascal VOC's ``SegmentationClass``.

    A pixel whose class differs from its left or upper neighbour is a boundary pixel; the
    boundary is then dilated to ``width`` pixels.

    Args:
        label (np.ndarray): HxW class-index map.
        width (int): Boundary width in pixels; 0 returns an unchanged copy. Defaults to 1.
        ignore_index (int): Value written on boundaries. Defaults to 255.

    Returns:
        np.ndarray: A new label map of the same dtype with ``ignore_index`` on boundaries.
    """
    if width < 0:
        raise ValueError(f'width must be >= 0, but got {width}')
    out = label.copy()
    if width == 0:
        return out
    edge = np.zeros(label.shape, np.uint8)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    if width > 1:
        edge = cv2.dilate(edge, np.ones((width, width), np.uint8))
    out[edge.astype(bool)] = ignore_index
    return out


def make_scene(rng: np.random.Generator,
               size: Tuple[int, int],
               num_classes: int,
               classes: Optional[Sequence[int]] = None,
               background: Union[int, Sequence[int]] = 0,
               num_shapes: Tuple[int, int] = (3, 8),
               noise_std: float = 8.0,
               ignore_width: int = 0,
               ignore_index: int = 255) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one structured scene and its label map.

    The background is one class, or horizontal bands of several classes split by wavy lines
    (e.g. sky / building / road). On it lie ``num_shapes`` random rectangles, ellipses and
    star-shaped polygons, each of a random class from ``classes``; later shapes occlude
    earlier ones. Every class has a fixed colour and texture (:func:`class_appearance`), each
    region gets a random brightness gain in ``[0.85, 1.15]`` and the texture a random phase,
    and Gaussian noise is added, so a small network can learn the classes from local
    appearance while the labels keep sharp boundaries and spatial structure.

    Args:
        rng (np.random.Generator): Source of randomness; the scene depends only on its state.
        size (tuple[int, int]): ``(height, width)`` in pixels.
        num_classes (int): Number of valid class ids, ``0 .. num_classes - 1`` (at most 255).
        classes (Sequence[int], optional): Classes drawn for shapes. Defaults to all classes
            except the background ones (all classes if that leaves none).
        background (int | Sequence[int]): Background class, or classes of horizontal bands
            from top to bottom. Defaults to 0.
        num_shapes (tuple[int, int]): Inclusive range of the number of shapes.
            Defaults to (3, 8).
        noise_std (float): Standard deviation of the additive Gaussian pixel noise.
            Defaults to 8.0.
        ignore_width (int): If > 0, class boundaries of this width are set to
            ``ignore_index`` in the label (see :func:`add_ignore_boundaries`). Defaults to 0.
        ignore_index (int): Label value of ignored pixels. Defaults to 255.

    Returns:
        tuple[np.ndarray, np.ndarray]: The RGB image (HxWx3 uint8) and the label map
        (HxW uint8).

    Raises:
        ValueError: A size, class id, shape range or ignore index is invalid.
    """
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f'size must be two positive ints (height, width), but got {size}')
    if not 1 <= num_classes <= 255:
        raise ValueError(f'num_classes must be in [1, 255], but got {num_classes}')
    if 0 <= ignore_index < num_classes or not 0 <= ignore_index <= 255:
        raise ValueError(f'ignore_index must be in [num_classes, 255], but got {ignore_index}')
    bands = [background] if isinstance(background, (int, np.integer)) else list(background)
    if classes is None:
        classes = [c for c in range(num_classes) if c not in bands] or list(range(num_classes))
    classes = list(classes)
    for name, ids in (('background', bands), ('classes', classes)):
        if not ids or any(not 0 <= c < num_classes for c in ids):
            raise ValueError(f'{name} must be non-empty ids in [0, {num_classes}), but got {ids}')
    low, high = num_shapes
    if not 0 <= low <= high:
        raise ValueError(f'num_shapes must be (low, high) with 0 <= low <= high, got {num_shapes}')

    label, instance = _background(rng, height, width, bands)
    instance_classes = list(bands)
    for _ in range(rng.integers(low, high + 1)):
        cls = int(classes[rng.integers(len(classes))])
        mask = _shape_mask(rng, height, width)
        label[mask] = cls
        instance[mask] = len(instance_classes)
        instance_classes.append(cls)
    gains = rng.uniform(0.85, 1.15, size=len(instance_classes)).astype(np.float32)

    image = np.empty((height, width, 3), np.float32)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    for cls in np.unique(label):
        mask = label == cls
        _, _, _, colour_a, colour_b = class_appearance(int(cls))
        blend = _texture_field(int(cls), cols[mask], rows[mask], rng.uniform(0, 1, size=2))
        image[mask] = colour_a + blend[:, None] * (colour_b - colour_a)
    image *= gains[instance][..., None]
    image += rng.standard_normal((height, width, 3), dtype=np.float32) * noise_std
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image, add_ignore_boundaries(label, ignore_width, ignore_index)
