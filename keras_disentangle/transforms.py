"""Random geometric transformations of images and their parameters, for AET.

Pure ``keras.ops`` / ``keras.random`` functions. A transformation is a batch
of ``3 x 3`` matrices ``M`` acting on homogeneous pixel coordinates
``(x, y, 1)`` (``x`` the column, ``y`` the row, pixel centres at integers):
the pixel at ``p`` of the input moves to ``M p`` (divided by its third
coordinate) in the output. ``apply_transform`` samples each output point at
the *inverse* map, whose 8 coefficients ``[a0, a1, a2, b0, b1, b2, c0, c1]``
(TensorFlow's convention) send an output point to the input point it is
sampled from.

Two families, with the defaults of the reference code of AET
(maple-research-lab/AET, commit ``042be33``):

- affine: ``M = T(c + t * size) R(theta) Sh(phi) S(s) T(-c)`` about the image
  centre ``c``, with rotation ``theta`` in +-180 degrees, translation ``t`` in
  +-0.2 of the width and height (whole pixels with ``size``, as the
  reference's ``np.round``, ``cifar/affine/dataset.py`` line 160), scale
  ``s`` in [0.7, 1.3] and shear ``phi`` in +-30 degrees; the shear is the
  reference's (torchvision's old ``_get_inverse_affine_matrix``,
  ``Sh = [[1, -sin phi], [0, cos phi]]``) or, with ``shear_form="tan"``,
  ``[[1, tan phi], [0, 1]]``; the regression targets are
  ``(cos theta, sin theta, tx, ty, scale, shear)`` each rescaled to [-1, 1]
  (``dataset.py`` lines 211-216).
- projective, the reference's (``sample_projective_pixels``,
  ``cifar/projective/dataset.py`` lines 157-173): the image corners scaled
  about the centre, rotated by a multiple of 90 degrees, then each moved by
  whole pixels; the target is the 8 coefficients of the *inverse* pixel
  homography, standardised (``projective_standardize``, ``main.py`` line 57).
- projective, the package's earlier form (``sample_projective``): corners
  moved by up to +-0.125 of the size in normalised coordinates, then a scale
  and a rotation; the targets are the forward homography's 8 coefficients in
  normalised coordinates (``[-1, 1]`` across the image, ``h22 = 1``).

``crop_and_flip_matrices`` gives the reference's augmentation before the
warp (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``,
``cifar/affine/main.py`` lines 59-60) as whole-pixel matrices.

Remaining differences from the reference: its images are PIL images whose
pixel centres sit at ``i + 0.5`` and whose affine centre is
``(W / 2 + 0.5, H / 2 + 0.5)`` in those coordinates, half a pixel from the
package's ``((W - 1) / 2, (H - 1) / 2)`` for affine warps (the projective
sampler follows the reference's coordinates exactly); it fills outside
points with grey 128 before normalising, the package with ``fill_value``.

``apply_transform`` samples with its own ``keras.ops`` bilinear sampler (a
gather), so projective warps compute the same on TensorFlow, JAX and PyTorch
(``keras.ops.image.affine_transform`` ignores the projective coefficients
outside TensorFlow), and inside ``jit_compile`` (TensorFlow's warp kernel has
no XLA form).

References:
    Zhang, Qi, Wang & Luo, "AET vs. AED: Unsupervised representation learning
    by auto-encoding transformations rather than data", CVPR 2019, section 4.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_disentangle._ops import as_float

__all__ = [
    "SHEAR_FORMS",
    "sample_affine",
    "affine_matrices",
    "affine_targets",
    "homography_from_corners",
    "sample_projective",
    "projective_targets",
    "normalized_to_pixels",
    "invert_3x3",
    "apply_transform",
    "crop_and_flip_matrices",
    "sample_projective_pixels",
    "projective_pixels_from",
    "projective_standardize",
]

SHEAR_FORMS = ("sin", "tan")


def sample_affine(
    batch_size,
    seed,
    rotation: float = 180.0,
    translation: float = 0.2,
    scale: tuple[float, float] = (0.7, 1.3),
    shear: float = 30.0,
    size: tuple[int, int] | None = None,
):
    """Draws affine parameters uniformly in the given ranges.

    With ``size = (H, W)`` the translations are whole pixels, as the
    reference's ``np.round(random.uniform(-max_dx, max_dx))``
    (maple-research-lab/AET ``cifar/affine/dataset.py`` line 160):
    ``tx = round(U(-translation W, translation W)) / W``, likewise ``ty``
    with ``H``.

    Args:
        batch_size: number of transformations ``N`` (an int or a scalar tensor).
        seed: a ``keras.random.SeedGenerator`` (or an int).
        rotation: the largest rotation, in degrees.
        translation: the largest translation, as a fraction of the size.
        scale: the ``(low, high)`` range of the scale factor.
        shear: the largest horizontal shear angle, in degrees.
        size: None (continuous translations) or the ``(height, width)`` in
            pixels, for whole-pixel translations.

    Returns:
        A float32 tensor ``(N, 5)``: ``theta`` (radians), ``tx``, ``ty``
        (fractions of the width and height), ``scale``, ``shear`` (radians).

    Example:

        >>> p = sample_affine(4, seed=0)
        >>> tuple(p.shape)
        (4, 5)
    """
    u = keras.random.uniform((batch_size, 5), minval=-1.0, maxval=1.0, seed=seed)
    low, high = float(scale[0]), float(scale[1])
    half, mid = (high - low) / 2.0, (high + low) / 2.0
    factors = ops.convert_to_tensor(
        [
            math.radians(rotation),
            translation,
            translation,
            half,
            math.radians(shear),
        ],
        dtype=u.dtype,
    )
    offsets = ops.convert_to_tensor([0.0, 0.0, 0.0, mid, 0.0], dtype=u.dtype)
    params = u * factors + offsets
    if size is None:
        return params
    height, width = (float(v) for v in size)
    pixels = ops.convert_to_tensor([1.0, width, height, 1.0, 1.0], dtype=u.dtype)
    rounded = ops.round(params * pixels) / pixels
    whole = ops.convert_to_tensor([False, True, True, False, False])
    return ops.where(whole, rounded, params)


def affine_targets(
    params,
    translation: float = 0.2,
    scale: tuple[float, float] = (0.7, 1.3),
    shear: float = 30.0,
):
    """The regression targets ``(cos, sin, tx, ty, scale, shear)`` in [-1, 1].

    ``cos theta`` and ``sin theta`` are already in [-1, 1]; the other four are
    divided by their largest magnitude (the scale centred on the middle of its
    range first). A range of zero width gives a target of 0.

    Args:
        params: ``(N, 5)`` parameters from ``sample_affine``.
        translation: the range given to ``sample_affine``.
        scale: the range given to ``sample_affine``.
        shear: the range given to ``sample_affine``.

    Returns:
        A tensor ``(N, 6)``.

    Example:

        >>> import numpy as np
        >>> t = affine_targets(np.array([[0.0, 0.2, -0.1, 1.3, 0.0]]))
        >>> np.round(np.asarray(t), 3).tolist()
        [[1.0, 0.0, 1.0, -0.5, 1.0, 0.0]]
    """
    params = ops.convert_to_tensor(params)
    low, high = float(scale[0]), float(scale[1])
    half, mid = (high - low) / 2.0, (high + low) / 2.0

    def rescale(v, radius):
        return v / radius if radius > 0 else ops.zeros_like(v)

    theta, tx, ty, s, phi = (params[:, k] for k in range(5))
    return ops.stack(
        [
            ops.cos(theta),
            ops.sin(theta),
            rescale(tx, translation),
            rescale(ty, translation),
            rescale(s - mid, half),
            rescale(phi, math.radians(shear)),
        ],
        axis=-1,
    )


def _matrix(rows):
    """Stacks 3 rows of 3 ``(N,)`` tensors into ``(N, 3, 3)``."""
    return ops.stack([ops.stack(r, axis=-1) for r in rows], axis=-2)


def affine_matrices(params, height: int, width: int, shear_form: str = "sin"):
    """Forward pixel-coordinate matrices ``(N, 3, 3)`` of affine parameters.

    ``M = T(c + (tx W, ty H)) R(theta) Sh(phi) S(s) T(-c)`` with
    ``c = ((W - 1) / 2, (H - 1) / 2)``, ``R = [[cos, -sin], [sin, cos]]``,
    ``S = s I`` and

    - ``shear_form="sin"`` (default, the reference's):
      ``Sh = [[1, -sin phi], [0, cos phi]]``, so that
      ``R Sh = [[cos theta, -sin(theta + phi)], [sin theta, cos(theta + phi)]]``,
      torchvision 0.2's ``_get_inverse_affine_matrix`` which
      maple-research-lab/AET calls (``cifar/affine/dataset.py`` line 200);
    - ``shear_form="tan"`` (the package's before 0.3):
      ``Sh = [[1, tan phi], [0, 1]]``.

    At ``phi = 30`` degrees the first gives the off-diagonal ``-0.5`` and
    ``0.866`` in y, the second ``+0.577`` and 1.

    Args:
        params: ``(N, 5)`` parameters from ``sample_affine``.
        height: the image height in pixels.
        width: the image width in pixels.
        shear_form: ``"sin"`` (default) or ``"tan"``.

    Returns:
        A tensor ``(N, 3, 3)``.

    Example:

        >>> import numpy as np
        >>> m = affine_matrices(np.array([[0.0, 0.5, 0.0, 1.0, 0.0]]), 4, 4)
        >>> (np.asarray(m)[0, 0] + 0.0).tolist()
        [1.0, 0.0, 2.0]
    """
    if shear_form not in SHEAR_FORMS:
        raise ValueError(
            "Invalid value for argument shear_form: expected one of "
            f"{list(SHEAR_FORMS)}. Received: shear_form={shear_form!r}"
        )
    params = ops.convert_to_tensor(params)
    theta, tx, ty, s, phi = (params[:, k] for k in range(5))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = ops.cos(theta), ops.sin(theta)
    # Linear part A = R Sh S.
    a00 = s * cos
    a10 = s * sin
    if shear_form == "tan":
        tan = ops.tan(phi)
        a01 = s * (cos * tan - sin)
        a11 = s * (sin * tan + cos)
    else:
        a01 = -s * ops.sin(theta + phi)
        a11 = s * ops.cos(theta + phi)
    b0 = cx + tx * width - (a00 * cx + a01 * cy)
    b1 = cy + ty * height - (a10 * cx + a11 * cy)
    zero, one = ops.zeros_like(s), ops.ones_like(s)
    return _matrix([[a00, a01, b0], [a10, a11, b1], [zero, zero, one]])


def invert_3x3(m):
    """Inverts a batch of ``3 x 3`` matrices by the adjugate formula.

    Args:
        m: a tensor ``(N, 3, 3)`` of invertible matrices.

    Returns:
        A tensor ``(N, 3, 3)``, ``m^-1``.

    Example:

        >>> import numpy as np
        >>> np.asarray(invert_3x3(2.0 * np.eye(3)[None]))[0].diagonal().tolist()
        [0.5, 0.5, 0.5]
    """
    m = ops.convert_to_tensor(m)
    e = [[m[:, i, j] for j in range(3)] for i in range(3)]

    def cof(i, j):
        r = [k for k in range(3) if k != i]
        c = [k for k in range(3) if k != j]
        minor = e[r[0]][c[0]] * e[r[1]][c[1]] - e[r[0]][c[1]] * e[r[1]][c[0]]
        return minor if (i + j) % 2 == 0 else -minor

    cofactors = [[cof(i, j) for j in range(3)] for i in range(3)]
    det = sum(e[0][j] * cofactors[0][j] for j in range(3))
    # The adjugate is the transposed cofactor matrix.
    return _matrix([[cofactors[j][i] / det for j in range(3)] for i in range(3)])


def homography_from_corners(src, dst):
    """Homographies ``H`` (``h22 = 1``) with ``H src_k ~ dst_k`` for 4 points.

    Solves the 8 x 8 linear system of the direct linear transform:
    ``u = (h0 x + h1 y + h2) / (h6 x + h7 y + 1)`` and
    ``v = (h3 x + h4 y + h5) / (h6 x + h7 y + 1)`` for each pair
    ``(x, y) -> (u, v)``.

    Args:
        src: ``(N, 4, 2)`` source points, no three collinear.
        dst: ``(N, 4, 2)`` destination points.

    Returns:
        A tensor ``(N, 3, 3)``.

    Example:

        >>> import numpy as np
        >>> sq = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
        >>> h = homography_from_corners(sq, 2.0 * sq)
        >>> np.round(np.asarray(h)[0], 6).tolist()
        [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """
    src = ops.convert_to_tensor(src)
    dst = ops.cast(ops.convert_to_tensor(dst), src.dtype)
    rows, rhs = [], []
    for k in range(4):
        x, y = src[:, k, 0], src[:, k, 1]
        u, v = dst[:, k, 0], dst[:, k, 1]
        zero, one = ops.zeros_like(x), ops.ones_like(x)
        rows.append(ops.stack([x, y, one, zero, zero, zero, -x * u, -y * u], -1))
        rows.append(ops.stack([zero, zero, zero, x, y, one, -x * v, -y * v], -1))
        rhs += [u, v]
    a = ops.stack(rows, axis=1)
    b = ops.expand_dims(ops.stack(rhs, axis=1), -1)
    h = ops.squeeze(ops.solve(a, b), -1)
    one = ops.ones_like(h[:, :1])
    return ops.reshape(ops.concatenate([h, one], axis=-1), (-1, 3, 3))


def sample_projective(
    batch_size,
    seed,
    corner: float = 0.125,
    scale: tuple[float, float] = (0.8, 1.2),
):
    """Draws homographies in normalised coordinates, as AET's reference.

    Normalised coordinates put the image corners at ``(+-1, +-1)``. Each
    corner moves by up to ``corner`` of the width and height (``2 * corner``
    in normalised units), giving ``H_c``; then ``H = R(k * 90deg) s H_c``
    with ``s`` uniform in ``scale`` and ``k`` uniform in {0, 1, 2, 3}.

    Args:
        batch_size: number of transformations ``N``.
        seed: a ``keras.random.SeedGenerator`` (or an int).
        corner: the largest corner displacement, a fraction of the size.
        scale: the ``(low, high)`` range of the scale factor.

    Returns:
        A float32 tensor ``(N, 3, 3)`` with ``h22 = 1``.

    Example:

        >>> h = sample_projective(2, seed=0)
        >>> tuple(h.shape)
        (2, 3, 3)
    """
    if not isinstance(seed, keras.random.SeedGenerator):
        # Three draws follow: an int seed would make them identical streams.
        seed = keras.random.SeedGenerator(seed)
    corners = ops.convert_to_tensor(
        [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype="float32"
    )
    src = ops.broadcast_to(corners, (batch_size, 4, 2))
    shift = keras.random.uniform(
        (batch_size, 4, 2), minval=-2.0 * corner, maxval=2.0 * corner, seed=seed
    )
    h_c = homography_from_corners(src, src + shift)
    s = keras.random.uniform(
        (batch_size,), minval=float(scale[0]), maxval=float(scale[1]), seed=seed
    )
    k = keras.random.randint((batch_size,), 0, 4, seed=seed)
    angle = ops.cast(k, "float32") * (math.pi / 2.0)
    cos, sin = ops.round(ops.cos(angle)), ops.round(ops.sin(angle))
    zero, one = ops.zeros_like(s), ops.ones_like(s)
    rs = _matrix(
        [[s * cos, -s * sin, zero], [s * sin, s * cos, zero], [zero, zero, one]]
    )
    return ops.matmul(rs, h_c)


def projective_targets(h):
    """The 8 regression targets of homographies: ``h / h22``, first 8 entries.

    Args:
        h: ``(N, 3, 3)`` homographies (normalised coordinates).

    Returns:
        A tensor ``(N, 8)``.

    Example:

        >>> import numpy as np
        >>> np.asarray(projective_targets(2.0 * np.eye(3)[None])).tolist()
        [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    h = ops.convert_to_tensor(h)
    h = h / h[:, 2:3, 2:3]
    return ops.reshape(h, (-1, 9))[:, :8]


def normalized_to_pixels(h, height: int, width: int):
    """Conjugates normalised-coordinate matrices into pixel coordinates.

    With ``P`` the map from pixels to normalised coordinates,
    ``u = x / cx - 1, v = y / cy - 1`` (``cx = (W - 1) / 2``, ...), the pixel
    matrix is ``P^-1 h P``.

    Args:
        h: ``(N, 3, 3)`` matrices in normalised coordinates.
        height: the image height in pixels.
        width: the image width in pixels.

    Returns:
        A tensor ``(N, 3, 3)``.

    Example:

        >>> import numpy as np
        >>> m = normalized_to_pixels(np.eye(3)[None], 5, 5)
        >>> np.asarray(m)[0].tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    h = ops.convert_to_tensor(h)
    cx, cy = max((width - 1) / 2.0, 0.5), max((height - 1) / 2.0, 0.5)
    p = ops.convert_to_tensor(
        [[1.0 / cx, 0.0, -1.0], [0.0, 1.0 / cy, -1.0], [0.0, 0.0, 1.0]],
        dtype=h.dtype,
    )
    p_inv = ops.convert_to_tensor(
        [[cx, 0.0, cx], [0.0, cy, cy], [0.0, 0.0, 1.0]], dtype=h.dtype
    )
    return ops.matmul(ops.matmul(p_inv, h), p)


_INTERPOLATIONS = ("bilinear", "nearest")
_FILL_MODES = ("constant",)


def _round_half_away(x: Any) -> Any:
    """Rounds halves away from zero (``std::round``, as TensorFlow's warp)."""
    return ops.sign(x) * ops.floor(ops.abs(x) + 0.5)


def _sample(images: Any, coefficients: Any, nearest: bool, fill_value: float) -> Any:
    """Samples ``images`` at the points the 8 projective ``coefficients`` give.

    Output pixel ``(x, y)`` reads the input at
    ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``,
    ``k = c0 x + c1 y + 1``: bilinearly from its 4 neighbours (or the nearest
    one), a neighbour outside the image counting as ``fill_value``, and
    ``fill_value`` where ``k = 0``. TensorFlow's ``ImageProjectiveTransformV3``
    with ``fill_mode="constant"`` computes the same.
    """
    shape = ops.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    dtype = images.dtype
    rows = ops.cast(ops.arange(height), "float32")
    cols = ops.cast(ops.arange(width), "float32")
    y = ops.broadcast_to(rows[:, None], (height, width))[None]
    x = ops.broadcast_to(cols[None, :], (height, width))[None]
    c = [coefficients[:, k, None, None] for k in range(8)]
    k = c[6] * x + c[7] * y + 1.0
    defined = ops.not_equal(k, 0.0)
    k = ops.where(defined, k, 1.0)
    x_in = (c[0] * x + c[1] * y + c[2]) / k
    y_in = (c[3] * x + c[4] * y + c[5]) / k
    # Far-away points (and k = 0) are read as fill; keep the integers small.
    far = 2.0 + ops.cast(ops.maximum(height, width), "float32")
    x_in = ops.where(defined, ops.clip(x_in, -far, far), -far)
    y_in = ops.where(defined, ops.clip(y_in, -far, far), -far)

    flat = ops.reshape(images, (-1, channels))
    base = ops.arange(batch)[:, None, None] * (height * width)

    def read(yi: Any, xi: Any) -> Any:
        """Pixels at integer ``(yi, xi)`` ``(N, H, W)``; fill outside."""
        inside = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
        yc = ops.clip(yi, 0, height - 1)
        xc = ops.clip(xi, 0, width - 1)
        values = ops.take(flat, ops.reshape(base + yc * width + xc, (-1,)), axis=0)
        values = ops.reshape(values, (batch, height, width, channels))
        return ops.where(inside[..., None], values, ops.cast(fill_value, dtype))

    if nearest:
        return read(
            ops.cast(_round_half_away(y_in), "int32"),
            ops.cast(_round_half_away(x_in), "int32"),
        )
    x0, y0 = ops.floor(x_in), ops.floor(y_in)
    wx = ops.cast((x_in - x0)[..., None], dtype)
    wy = ops.cast((y_in - y0)[..., None], dtype)
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    x1, y1 = x0 + 1, y0 + 1
    top = (1 - wx) * read(y0, x0) + wx * read(y0, x1)
    bottom = (1 - wx) * read(y1, x0) + wx * read(y1, x1)
    return (1 - wy) * top + wy * bottom


def apply_transform(
    images: Any,
    matrices: Any,
    interpolation: str = "bilinear",
    fill_mode: str = "constant",
    fill_value: float = 0.0,
) -> Any:
    """Warps ``images`` so that the pixel at ``p`` moves to ``M p``.

    Each output pixel ``q`` is sampled from the input at ``M^-1 q`` (divided
    by its third coordinate): bilinearly from the 4 neighbouring pixels, or
    from the nearest one; neighbours outside the image count as
    ``fill_value``. The sampler is written in ``keras.ops`` (a gather), so
    affine *and* projective matrices warp the same way on TensorFlow, JAX
    and PyTorch, and inside ``jit_compile``; it computes what TensorFlow's
    ``ImageProjectiveTransformV3`` (``keras.ops.image.affine_transform`` on
    TensorFlow) computes with ``fill_mode="constant"``.

    Args:
        images: ``(N, H, W, C)`` channels-last images.
        matrices: ``(N, 3, 3)`` forward pixel-coordinate matrices.
        interpolation: ``"bilinear"`` (default) or ``"nearest"``.
        fill_mode: ``"constant"``, the only mode (others raise).
        fill_value: the value of the points outside the image.

    Returns:
        The warped images, same shape and dtype as ``images``.

    Raises:
        ValueError: for another ``interpolation`` or ``fill_mode``, images
            that are not ``(N, H, W, C)`` or matrices not ``(N, 3, 3)``.

    Example:

        >>> import numpy as np
        >>> x = np.zeros((1, 3, 3, 1), "float32"); x[0, 1, 0, 0] = 1.0
        >>> shift = np.array([[[1.0, 0, 1], [0, 1, 0], [0, 0, 1]]], "float32")
        >>> y = apply_transform(x, shift, interpolation="nearest")
        >>> np.asarray(y)[0, :, :, 0].tolist()[1]
        [0.0, 1.0, 0.0]
    """
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            "Invalid value for argument interpolation: expected one of "
            f"{list(_INTERPOLATIONS)}. Received: interpolation={interpolation!r}"
        )
    if fill_mode not in _FILL_MODES:
        raise ValueError(
            "Invalid value for argument fill_mode: expected one of "
            f"{list(_FILL_MODES)} (the only mode computed the same on every "
            f"backend). Received: fill_mode={fill_mode!r}"
        )
    images = ops.convert_to_tensor(images)
    if len(images.shape) != 4:
        raise ValueError(
            "Invalid shape for argument images: expected (N, H, W, C). "
            f"Received: images.shape={images.shape}"
        )
    matrices = ops.convert_to_tensor(matrices)
    if tuple(matrices.shape[-2:]) != (3, 3) or len(matrices.shape) != 3:
        raise ValueError(
            "Invalid shape for argument matrices: expected (N, 3, 3). "
            f"Received: matrices.shape={matrices.shape}"
        )
    inverse = invert_3x3(ops.cast(matrices, "float32"))
    inverse = inverse / inverse[:, 2:3, 2:3]
    coefficients = ops.reshape(inverse, (-1, 9))[:, :8]
    dtype = images.dtype
    work = as_float(images)
    warped = _sample(work, coefficients, interpolation == "nearest", fill_value)
    return ops.cast(warped, dtype)


def crop_and_flip_matrices(batch_size, seed, height: int, width: int, padding: int = 4):
    """Whole-pixel matrices of a random padded crop, then a random flip.

    The reference's augmentation before the warp (maple-research-lab/AET
    ``cifar/affine/main.py`` lines 59-60, ``transforms.RandomCrop(32,
    padding=4)`` then ``transforms.RandomHorizontalFlip()``): the image is
    padded with ``padding`` zeros on each side and cropped back to its size
    at offsets ``(i, j)`` uniform in ``{0, ..., 2 padding}``, then flipped
    left-right with probability 1/2. As a forward pixel matrix,
    ``M = F T(padding - j, padding - i)`` with ``F`` the flip
    ``x -> W - 1 - x`` (or the identity). Warped with
    ``apply_transform(..., interpolation="nearest")`` it moves whole pixels
    and fills the uncovered border with ``fill_value``.

    Args:
        batch_size: number of matrices ``N``.
        seed: a ``keras.random.SeedGenerator`` (or an int).
        height: the image height in pixels.
        width: the image width in pixels.
        padding: the crop's padding in pixels, an int >= 0.

    Returns:
        A float32 tensor ``(N, 3, 3)``.

    Example:

        >>> m = crop_and_flip_matrices(3, seed=0, height=8, width=8)
        >>> tuple(m.shape)
        (3, 3, 3)
    """
    if not isinstance(seed, keras.random.SeedGenerator):
        seed = keras.random.SeedGenerator(seed)
    offsets = keras.random.randint((batch_size, 2), 0, 2 * padding + 1, seed=seed)
    offsets = ops.cast(offsets, "float32")
    flip = ops.cast(keras.random.uniform((batch_size,), seed=seed) < 0.5, "float32")
    sign = 1.0 - 2.0 * flip
    dx = padding - offsets[:, 1]
    dy = padding - offsets[:, 0]
    zero, one = ops.zeros_like(flip), ops.ones_like(flip)
    return _matrix(
        [
            [sign, zero, sign * dx + flip * (width - 1.0)],
            [zero, one, dy],
            [zero, zero, one],
        ]
    )


def sample_projective_pixels(
    batch_size,
    seed,
    height: int,
    width: int,
    corner: float = 0.125,
    scale: tuple[float, float] = (0.8, 1.2),
    integer: bool = True,
):
    """Draws projective warps as the reference does, in pixels.

    A transcription of maple-research-lab/AET ``cifar/projective/dataset.py``
    lines 157-173, in PIL's coordinates (pixel centres at ``i + 0.5``): the
    corners ``(0, 0), (W, 0), (W, H), (0, H)`` are scaled by ``s`` (uniform
    in ``scale``) about ``c = (W / 2 + 0.5, H / 2 + 0.5)``, cycled by ``k``
    places (uniform in {0, 1, 2, 3}: a rotation by ``k`` quarter turns),
    then each coordinate moved by a whole number of pixels uniform in
    ``{-int(corner W), ..., int(corner W)}`` (``H`` for y; 4 at 32 px) or,
    with ``integer=False``, by a real number in ``[-corner W, corner W]``.
    The warp sends the moved points back to the image corners: its
    coefficients (``find_coeffs(pts, corners)``, the map from an output
    point to the input point it reads, what PIL's ``Image.PERSPECTIVE``
    takes) are the reference's regression target.

    Args:
        batch_size: number of transformations ``N`` (an int).
        seed: a ``keras.random.SeedGenerator`` (or an int).
        height: the image height in pixels.
        width: the image width in pixels.
        corner: the largest corner displacement, a fraction of the size.
        scale: the ``(low, high)`` range of the scale factor.
        integer: whole-pixel displacements (the reference's).

    Returns:
        A tuple ``(matrices, coefficients)``: the forward pixel matrices
        ``(N, 3, 3)`` for ``apply_transform`` (pixel centres at integers)
        and the 8 inverse coefficients ``(N, 8)`` in PIL's coordinates.

    Example:

        >>> m, c = sample_projective_pixels(2, seed=0, height=32, width=32)
        >>> tuple(m.shape), tuple(c.shape)
        ((2, 3, 3), (2, 8))
    """
    if not isinstance(seed, keras.random.SeedGenerator):
        seed = keras.random.SeedGenerator(seed)
    s = keras.random.uniform(
        (batch_size,), minval=float(scale[0]), maxval=float(scale[1]), seed=seed
    )
    k = keras.random.randint((batch_size,), 0, 4, seed=seed)
    limits = []
    for size in (width, height):
        if integer:
            pixels = int(corner * size + 1e-9)
            shift = keras.random.randint(
                (batch_size, 4, 1), -pixels, pixels + 1, seed=seed
            )
        else:
            most = corner * size
            shift = keras.random.uniform(
                (batch_size, 4, 1), minval=-most, maxval=most, seed=seed
            )
        limits.append(ops.cast(shift, "float32"))
    return projective_pixels_from(s, k, ops.concatenate(limits, axis=-1), height, width)


def projective_pixels_from(scale, quarter_turns, shifts, height: int, width: int):
    """The reference's projective warp from its draws (no randomness).

    See ``sample_projective_pixels``: the corners scaled by ``scale`` about
    ``(W / 2 + 0.5, H / 2 + 0.5)``, cycled by ``quarter_turns`` places and
    moved by ``shifts``, all in PIL's coordinates.

    Args:
        scale: ``(N,)`` scale factors.
        quarter_turns: ``(N,)`` integers in {0, 1, 2, 3}.
        shifts: ``(N, 4, 2)`` displacements of the four points, in pixels.
        height: the image height in pixels.
        width: the image width in pixels.

    Returns:
        ``(matrices, coefficients)`` as ``sample_projective_pixels``.

    Example:

        >>> import numpy as np
        >>> m, c = projective_pixels_from(
        ...     np.ones(1), np.zeros(1, "int32"), np.zeros((1, 4, 2)), 8, 8)
        >>> np.round(np.asarray(c), 4).tolist()
        [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    s = ops.reshape(ops.cast(scale, "float32"), (-1, 1, 1))
    k = ops.reshape(ops.cast(quarter_turns, "int32"), (-1, 1))
    shifts = ops.cast(shifts, "float32")
    corners = ops.convert_to_tensor(
        [[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]], dtype="float32"
    )
    centre = ops.convert_to_tensor(
        [[width / 2.0 + 0.5, height / 2.0 + 0.5]], dtype="float32"
    )
    points = (corners[None] - centre[None]) * s + centre[None]
    # pts = [pts[(i + k) % 4] for i in range(4)]
    index = ops.mod(ops.arange(4)[None, :] + k, 4)
    index = ops.broadcast_to(index[:, :, None], ops.shape(shifts))
    points = ops.take_along_axis(points, index, axis=1) + shifts
    target = ops.broadcast_to(corners[None], ops.shape(shifts))
    inverse = homography_from_corners(points, target)
    coefficients = ops.reshape(inverse, (-1, 9))[:, :8]
    forward = invert_3x3(inverse)
    # PIL coordinates u = i + 0.5 -> pixel-centre coordinates i.
    to_pixels = ops.convert_to_tensor(
        [[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]], dtype="float32"
    )
    from_pixels = ops.convert_to_tensor(
        [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]], dtype="float32"
    )
    matrices = ops.matmul(ops.matmul(to_pixels, forward), from_pixels)
    return matrices, coefficients


def projective_standardize(coefficients, height: int, width: int):
    """The reference's standardisation of the 8 inverse coefficients.

    ``(c - mean) / std`` with, at 32 x 32 pixels,
    ``mean = (0, 0, 16, 0, 0, 16, 0, 0)`` and
    ``std = (1, 1, 20, 1, 1, 20, 0.015, 0.015)``
    (maple-research-lab/AET ``cifar/projective/main.py`` line 57). For
    another size the translation entries scale with it (``mean W / 2``,
    ``std 20 W / 32``) and the perspective entries inversely
    (``0.015 * 32 / W``), the size the numbers were chosen for being 32.

    Args:
        coefficients: ``(N, 8)`` from ``sample_projective_pixels``.
        height: the image height in pixels.
        width: the image width in pixels.

    Returns:
        A tensor ``(N, 8)``.

    Example:

        >>> import numpy as np
        >>> c = np.array([[1.0, 0, 16, 0, 1, 16, 0, 0]])
        >>> np.asarray(projective_standardize(c, 32, 32)).tolist()
        [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    coefficients = ops.convert_to_tensor(coefficients)
    w, h = float(width), float(height)
    mean = ops.convert_to_tensor(
        [0.0, 0.0, w / 2, 0.0, 0.0, h / 2, 0.0, 0.0], dtype=coefficients.dtype
    )
    std = ops.convert_to_tensor(
        [1.0, 1.0, 20 * w / 32, 1.0, 1.0, 20 * h / 32, 0.48 / w, 0.48 / h],
        dtype=coefficients.dtype,
    )
    return (coefficients - mean) / std
