"""Random warps for AET: matrices against NumPy, pixels moved where expected."""

import math

import keras
import numpy as np
import pytest
from helpers import numpy, rtol

from keras_disentangle import transforms


def np_affine(theta, tx, ty, s, phi, height, width, shear_form="sin"):
    """T(c + t size) R Sh S T(-c), composed from explicit matrices."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    shift_back = np.array(
        [[1, 0, cx + tx * width], [0, 1, cy + ty * height], [0, 0, 1]]
    )
    rotate = np.array(
        [
            [math.cos(theta), -math.sin(theta), 0],
            [math.sin(theta), math.cos(theta), 0],
            [0, 0, 1],
        ]
    )
    if shear_form == "tan":
        shear = np.array([[1, math.tan(phi), 0], [0, 1, 0], [0, 0, 1]])
    else:  # the reference's
        shear = np.array([[1, -math.sin(phi), 0], [0, math.cos(phi), 0], [0, 0, 1]])
    scale = np.diag([s, s, 1.0])
    centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    return shift_back @ rotate @ shear @ scale @ centre


def _round_half_away(v):
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def np_warp_bilinear(image, matrix, fill=0.0):
    """Output pixel (r, c) samples M^-1 (c, r, 1) bilinearly from its four
    neighbours, a neighbour outside the image reading ``fill``: what
    TensorFlow's ImageProjectiveTransformV3 computes (fill_mode="constant")."""
    inverse = np.linalg.inv(matrix)
    inverse = inverse / inverse[2, 2]
    height, width = image.shape[:2]
    out = np.zeros_like(image, dtype="float64")

    def read(y, x):
        if 0 <= y < height and 0 <= x < width:
            return image[y, x].astype("float64")
        return np.full(image.shape[2:], fill)

    for r in range(height):
        for c in range(width):
            q = inverse @ np.array([c, r, 1.0])
            if q[2] == 0:
                out[r, c] = fill
                continue
            x, y = q[0] / q[2], q[1] / q[2]
            x0, y0 = math.floor(x), math.floor(y)
            wx, wy = x - x0, y - y0
            top = (1 - wx) * read(y0, x0) + wx * read(y0, x0 + 1)
            bottom = (1 - wx) * read(y0 + 1, x0) + wx * read(y0 + 1, x0 + 1)
            out[r, c] = (1 - wy) * top + wy * bottom
    return out


def np_warp_nearest(image, matrix):
    """Output pixel (r, c) takes the input at round(M^-1 (c, r, 1)), else 0."""
    inverse = np.linalg.inv(matrix)
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    for r in range(height):
        for c in range(width):
            q = inverse @ np.array([c, r, 1.0])
            x, y = q[0] / q[2], q[1] / q[2]
            xi, yi = _round_half_away(x), _round_half_away(y)
            if 0 <= xi < width and 0 <= yi < height:
                out[r, c] = image[yi, xi]
    return out


def test_sample_affine_ranges_and_targets():
    params = numpy(transforms.sample_affine(2000, seed=0))
    theta, tx, ty, s, phi = params.T
    assert np.abs(theta).max() <= math.pi and np.abs(theta).max() > 3.0
    assert np.abs(tx).max() <= 0.2 and np.abs(ty).max() > 0.19
    assert 0.7 <= s.min() and s.max() <= 1.3 and s.max() - s.min() > 0.55
    assert np.abs(phi).max() <= math.radians(30)
    targets = numpy(transforms.affine_targets(params))
    assert targets.shape == (2000, 6)
    assert np.abs(targets).max() <= 1.0 + 1e-6
    assert np.abs(targets).max(axis=0).min() > 0.95  # every target spans [-1, 1]
    np.testing.assert_allclose(targets[:, 0], np.cos(theta), atol=1e-6)
    np.testing.assert_allclose(targets[:, 4], (s - 1.0) / 0.3, atol=1e-5)
    np.testing.assert_allclose(targets[:, 5], phi / math.radians(30), atol=1e-5)


def test_sample_affine_reproducible_with_seed_generator():
    a = numpy(transforms.sample_affine(4, keras.random.SeedGenerator(3)))
    b = numpy(transforms.sample_affine(4, keras.random.SeedGenerator(3)))
    generator = keras.random.SeedGenerator(3)
    transforms.sample_affine(4, generator)
    c = numpy(transforms.sample_affine(4, generator))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("shear_form", ["sin", "tan"])
def test_affine_matrices_match_numpy_composition(shear_form):
    rng = np.random.default_rng(0)
    params = np.stack(
        [
            rng.uniform(-3, 3, 5),
            rng.uniform(-0.2, 0.2, 5),
            rng.uniform(-0.2, 0.2, 5),
            rng.uniform(0.7, 1.3, 5),
            rng.uniform(-0.5, 0.5, 5),
        ],
        axis=1,
    )
    got = numpy(transforms.affine_matrices(params, 10, 14, shear_form))
    for k in range(5):
        np.testing.assert_allclose(
            got[k],
            np_affine(*params[k], 10, 14, shear_form),
            atol=1e-10 if rtol() < 1e-6 else 1e-4,
        )


def test_invert_3x3_matches_numpy():
    m = np.random.default_rng(1).normal(size=(6, 3, 3)) + 3 * np.eye(3)
    np.testing.assert_allclose(
        numpy(transforms.invert_3x3(m)), np.linalg.inv(m), rtol=rtol(), atol=rtol()
    )


def _single_pixel(height, width, row, col):
    x = np.zeros((1, height, width, 1), "float32")
    x[0, row, col, 0] = 1.0
    return x


def _where(image):
    return tuple(int(v) for v in np.argwhere(numpy(image)[0, :, :, 0] > 0.5)[0])


def test_translation_moves_a_known_pixel():
    # tx = 0.25 of a width of 8 is 2 pixels to the right; ty = -0.125: 1 up.
    m = transforms.affine_matrices(np.array([[0.0, 0.25, -0.125, 1.0, 0.0]]), 8, 8)
    out = transforms.apply_transform(_single_pixel(8, 8, 3, 2), m, "nearest")
    assert _where(out) == (2, 4)
    assert float(numpy(out).sum()) == 1.0


def test_rotation_by_90_degrees_moves_a_known_pixel():
    # About the centre (3, 3) of a 7 x 7 image, R(90) sends (x, y) = (2, 1),
    # i.e. (-1, -2) from the centre, to (2, -1) from it: (x, y) = (5, 2).
    m = transforms.affine_matrices(np.array([[math.pi / 2, 0.0, 0.0, 1.0, 0.0]]), 7, 7)
    out = transforms.apply_transform(_single_pixel(7, 7, 1, 2), m, "nearest")
    assert _where(out) == (2, 5)


def test_scale_moves_a_known_pixel_away_from_the_centre():
    m = transforms.affine_matrices(np.array([[0.0, 0.0, 0.0, 2.0, 0.0]]), 9, 9)
    out = transforms.apply_transform(_single_pixel(9, 9, 4, 5), m, "nearest")
    assert numpy(out)[0, 4, 6, 0] == 1.0  # column 5 = centre + 1 -> + 2


def test_homography_from_corners_matches_numpy_solve():
    rng = np.random.default_rng(2)
    src = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    src = np.broadcast_to(src, (4, 4, 2))
    dst = src + rng.uniform(-0.25, 0.25, size=(4, 4, 2))
    got = numpy(transforms.homography_from_corners(src, dst))
    for k in range(4):
        # Independent: solve with the 9-vector null space (SVD) of the DLT.
        rows = []
        for (x, y), (u, v) in zip(src[k], dst[k], strict=True):
            rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
            rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
        h = np.linalg.svd(np.array(rows))[2][-1].reshape(3, 3)
        np.testing.assert_allclose(got[k], h / h[2, 2], atol=rtol(1e-9, 1e-4))
        for p, q in zip(src[k], dst[k], strict=True):
            w = got[k] @ np.array([p[0], p[1], 1.0])
            np.testing.assert_allclose(w[:2] / w[2], q, atol=rtol(1e-9, 1e-4))


def test_sample_projective_and_targets():
    h = numpy(transforms.sample_projective(500, seed=0))
    np.testing.assert_allclose(h[:, 2, 2], 1.0, atol=1e-6)
    targets = numpy(transforms.projective_targets(h))
    np.testing.assert_allclose(targets, h.reshape(-1, 9)[:, :8], atol=1e-6)
    # The corners end up within scale * (1 + 2 * 0.125) of the centre, and
    # the rotation takes all four multiples of 90 degrees.
    corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], float)
    moved = np.einsum("nij,kj->nki", h, corners)
    moved = moved[..., :2] / moved[..., 2:]
    assert np.abs(moved).max() <= 1.2 * 1.25 + 1e-4
    quadrant = np.sign(moved[:, 2] - moved[:, 0])  # the image diagonal's direction
    assert len({tuple(q) for q in quadrant}) == 4


def test_projective_warp_matches_numpy_nearest_neighbour():
    rng = np.random.default_rng(3)
    image = rng.uniform(size=(1, 12, 10, 1)).astype("float32")
    h = transforms.sample_projective(1, seed=4)
    m = numpy(transforms.normalized_to_pixels(h, 12, 10))
    assert abs(m[0, 2, 0]) + abs(m[0, 2, 1]) > 1e-4  # truly projective
    got = numpy(transforms.apply_transform(image, m, "nearest"))[0, :, :, 0]
    expected = np_warp_nearest(image[0, :, :, 0], m[0].astype("float64"))
    # float32 coordinates may round a point within 1e-6 of a half the other way.
    assert np.mean(np.isclose(got, expected)) > 0.97


@pytest.mark.parametrize("kind", ["projective", "affine"])
def test_warp_matches_numpy_bilinear_pixel_for_pixel(kind):
    # The same warp on every backend: each pixel against an independent
    # NumPy loop of TensorFlow's projective bilinear sampler.
    rng = np.random.default_rng(5)
    images = rng.uniform(size=(3, 9, 11, 2)).astype("float32")
    if kind == "projective":
        h = transforms.sample_projective(3, seed=6)
        m = numpy(transforms.normalized_to_pixels(h, 9, 11))
        assert np.abs(m[:, 2, :2]).max() > 1e-3  # truly projective
    else:
        m = numpy(
            transforms.affine_matrices(transforms.sample_affine(3, seed=6), 9, 11)
        )
    got = numpy(transforms.apply_transform(images, m))
    for k in range(3):
        expected = np_warp_bilinear(images[k], m[k].astype("float64"))
        np.testing.assert_allclose(got[k], expected, atol=1e-4)
    assert np.abs(got - images).max() > 0.1  # the warp did something


@pytest.mark.backends(
    "tensorflow", reason="compares with TensorFlow's own projective warp kernel"
)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_warp_equals_tensorflow_kernel(interpolation):
    images = np.random.default_rng(8).uniform(size=(4, 12, 10, 3)).astype("float32")
    m = transforms.normalized_to_pixels(transforms.sample_projective(4, seed=9), 12, 10)
    inverse = transforms.invert_3x3(m)
    inverse = inverse / inverse[:, 2:3, 2:3]
    coefficients = keras.ops.reshape(inverse, (-1, 9))[:, :8]
    expected = keras.ops.image.affine_transform(
        images, coefficients, interpolation=interpolation, fill_mode="constant"
    )
    got = transforms.apply_transform(images, m, interpolation)
    np.testing.assert_allclose(numpy(got), numpy(expected), atol=1e-5)


def test_apply_transform_raises_for_what_it_cannot_do():
    x = np.zeros((1, 4, 4, 1), "float32")
    m = np.eye(3, dtype="float32")[None]
    with pytest.raises(ValueError, match="argument fill_mode.*reflect"):
        transforms.apply_transform(x, m, fill_mode="reflect")
    with pytest.raises(ValueError, match="argument interpolation.*cubic"):
        transforms.apply_transform(x, m, interpolation="cubic")
    with pytest.raises(ValueError, match="argument images"):
        transforms.apply_transform(x[0], m)
    with pytest.raises(ValueError, match="argument matrices"):
        transforms.apply_transform(x, np.eye(2)[None])


def test_normalized_to_pixels_maps_corners():
    h = numpy(transforms.sample_projective(3, seed=1))
    m = numpy(transforms.normalized_to_pixels(h, 5, 9))
    for k in range(3):
        # The pixel corner (0, 0) is (-1, -1) in normalised coordinates.
        w = h[k] @ np.array([-1.0, -1.0, 1.0])
        u, v = w[:2] / w[2]
        p = m[k] @ np.array([0.0, 0.0, 1.0])
        np.testing.assert_allclose(p[:2] / p[2], [(u + 1) * 4, (v + 1) * 2], atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 6, 6, 1), (3, 5, 7, 3)])
def test_identity_transform_leaves_images_unchanged(shape):
    x = np.random.default_rng(4).uniform(size=shape).astype("float32")
    m = np.broadcast_to(np.eye(3, dtype="float32"), (shape[0], 3, 3))
    np.testing.assert_allclose(numpy(transforms.apply_transform(x, m)), x, atol=1e-6)


def test_sample_projective_int_seed_draws_like_a_seed_generator():
    # An int seed must not reuse one random stream for the corner shifts, the
    # scale and the rotation: it is turned into one SeedGenerator.
    a = keras.ops.convert_to_numpy(transforms.sample_projective(64, seed=3))
    b = keras.ops.convert_to_numpy(
        transforms.sample_projective(64, seed=keras.random.SeedGenerator(3))
    )
    np.testing.assert_allclose(a, b)


# --- Against NumPy transcriptions of maple-research-lab/AET's code. ---


def np_torchvision_inverse_affine(center, angle, translate, scale, shear):
    """torchvision 0.2's ``_get_inverse_affine_matrix`` (which AET's
    ``cifar/affine/dataset.py`` line 200 calls), transcribed: the 2 x 3
    matrix from an output point to the input point it reads."""
    angle, shear, scale = math.radians(angle), math.radians(shear), 1.0 / scale
    d = math.cos(angle + shear) * math.cos(angle) + math.sin(angle + shear) * math.sin(
        angle
    )
    matrix = [
        math.cos(angle + shear), math.sin(angle + shear), 0,
        -math.sin(angle), math.cos(angle), 0,
    ]  # fmt: skip
    matrix = [scale / d * m for m in matrix]
    matrix[2] += matrix[0] * (-center[0] - translate[0]) + matrix[1] * (
        -center[1] - translate[1]
    )
    matrix[5] += matrix[3] * (-center[0] - translate[0]) + matrix[4] * (
        -center[1] - translate[1]
    )
    matrix[2] += center[0]
    matrix[5] += center[1]
    return np.array(matrix).reshape(2, 3)


def test_reference_shear_form_matches_torchvision_transcription():
    rng = np.random.default_rng(4)
    height, width = 10, 14
    params = np.stack(
        [
            rng.uniform(-3, 3, 6),
            np.round(rng.uniform(-0.2, 0.2, 6) * width) / width,
            np.round(rng.uniform(-0.2, 0.2, 6) * height) / height,
            rng.uniform(0.7, 1.3, 6),
            rng.uniform(-0.5, 0.5, 6),
        ],
        axis=1,
    )
    got = numpy(transforms.affine_matrices(params, height, width))  # "sin"
    centre = ((width - 1) / 2, (height - 1) / 2)  # the package's centre
    for k in range(6):
        theta, tx, ty, s, phi = params[k]
        reference = np_torchvision_inverse_affine(
            centre, math.degrees(theta), (tx * width, ty * height), s,
            math.degrees(phi),
        )  # fmt: skip
        inverse = np.linalg.inv(got[k].astype("float64"))
        np.testing.assert_allclose(inverse[:2], reference, atol=rtol(1e-9, 1e-4))
    # The numbers at 30 degrees of shear, no rotation, unit scale.
    one = np.array([[0.0, 0.0, 0.0, 1.0, math.radians(30)]])
    sin_form = numpy(transforms.affine_matrices(one, 8, 8))[0]
    tan_form = numpy(transforms.affine_matrices(one, 8, 8, shear_form="tan"))[0]
    np.testing.assert_allclose(sin_form[:2, :2], [[1, -0.5], [0, 0.866025]], atol=1e-5)
    np.testing.assert_allclose(tan_form[:2, :2], [[1, 0.577350], [0, 1]], atol=1e-5)
    with pytest.raises(ValueError, match="argument shear_form"):
        transforms.affine_matrices(one, 8, 8, shear_form="cot")


def test_whole_pixel_translations():
    params = numpy(transforms.sample_affine(2000, seed=1, size=(28, 32)))
    tx, ty = params[:, 1] * 32, params[:, 2] * 28
    np.testing.assert_allclose(tx, np.round(tx), atol=1e-4)
    np.testing.assert_allclose(ty, np.round(ty), atol=1e-4)
    assert np.abs(np.round(tx)).max() == 6 and np.abs(np.round(ty)).max() == 6
    assert len(np.unique(np.round(tx))) == 13  # round(U(-6.4, 6.4))
    continuous = numpy(transforms.sample_affine(5, seed=1))
    assert not np.allclose(continuous[:, 1] * 32, np.round(continuous[:, 1] * 32))


def np_crop_and_flip(image, i, j, flip, padding):
    """torchvision's RandomCrop(size, padding) at offsets (i, j), then a
    horizontal flip: by padding and slicing."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    out = padded[i : i + height, j : j + width]
    return out[:, ::-1] if flip else out


def test_crop_and_flip_matches_numpy_pad_and_slice():
    padding, height, width = 2, 6, 7
    m = numpy(transforms.crop_and_flip_matrices(40, 0, height, width, padding))
    x = np.random.default_rng(0).uniform(size=(40, height, width, 1))
    x = x.astype("float32")
    got = numpy(transforms.apply_transform(x, m, interpolation="nearest"))
    seen = set()
    for n in range(40):
        flip = bool(m[n, 0, 0] < 0)
        dx = -m[n, 0, 2] + (width - 1) if flip else m[n, 0, 2]
        i, j = int(round(padding - m[n, 1, 2])), int(round(padding - dx))
        assert 0 <= i <= 2 * padding and 0 <= j <= 2 * padding
        np.testing.assert_array_equal(
            got[n], np_crop_and_flip(x[n], i, j, flip, padding)
        )
        seen.add((i, j, flip))
    assert {f for *_, f in seen} == {False, True} and len(seen) > 15


def np_find_coeffs(pa, pb):
    """AET's ``find_coeffs`` (cifar/projective/dataset.py lines 125-135)."""
    matrix = []
    for p1, p2 in zip(pa, pb, strict=True):
        matrix.append([p1[0], p1[1], 1, 0, 0, 0, -p2[0] * p1[0], -p2[0] * p1[1]])
        matrix.append([0, 0, 0, p1[0], p1[1], 1, -p2[1] * p1[0], -p2[1] * p1[1]])
    a = np.array(matrix, dtype=float)
    b = np.array(pb, dtype=float).reshape(8)
    return np.linalg.inv(a.T @ a) @ a.T @ b


def np_reference_projective(scale, rotation, shift, width, height):
    """AET's ``__getitem__`` (dataset.py lines 157-173) for given draws."""
    center = (width * 0.5 + 0.5, height * 0.5 + 0.5)
    cx, cy = center
    pts = [
        ((0 - cx) * scale + cx, (0 - cy) * scale + cy),
        ((width - cx) * scale + cx, (0 - cy) * scale + cy),
        ((width - cx) * scale + cx, (height - cy) * scale + cy),
        ((0 - cx) * scale + cx, (height - cy) * scale + cy),
    ]
    pts = [pts[(ii + rotation) % 4] for ii in range(4)]
    pts = [
        (pts[ii][0] + shift[2 * ii], pts[ii][1] + shift[2 * ii + 1]) for ii in range(4)
    ]
    return np_find_coeffs(pts, [(0, 0), (width, 0), (width, height), (0, height)])


def np_warp_pil_coefficients(image, coeffs):
    """Output pixel (r, c), PIL point (c + .5, r + .5), reads the input at the
    coefficients' point (PIL's PERSPECTIVE), bilinearly, 0 outside."""
    a0, a1, a2, b0, b1, b2, c0, c1 = coeffs
    height, width = image.shape[:2]
    matrix = np.array([[a0, a1, a2], [b0, b1, b2], [c0, c1, 1.0]])
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    inverse_pixels = np.linalg.inv(shift) @ matrix @ shift
    return np_warp_bilinear(image, np.linalg.inv(inverse_pixels))


def test_reference_projective_matches_numpy_transcription():
    rng = np.random.default_rng(5)
    n, height, width = 4, 32, 32
    scale = rng.uniform(0.8, 1.2, n)
    rotation = rng.integers(0, 4, n)
    shift = rng.integers(-4, 5, (n, 8)).astype(float)
    m, c = transforms.projective_pixels_from(
        scale, rotation, shift.reshape(n, 4, 2), height, width
    )
    m, c = numpy(m), numpy(c)
    for k in range(n):
        reference = np_reference_projective(
            scale[k], rotation[k], shift[k], width, height
        )
        np.testing.assert_allclose(c[k], reference, rtol=2e-3, atol=2e-4)
    # The warp reads where the coefficients say (pixel for pixel).
    image = rng.uniform(size=(n, height, width, 1)).astype("float32")
    warped = numpy(transforms.apply_transform(image, m))
    for k in range(n):
        expected = np_warp_pil_coefficients(image[k], c[k].astype("float64"))
        np.testing.assert_allclose(warped[k], expected, atol=2e-3)
    # Standardised as main.py line 57 at 32 px.
    mean = np.array([0, 0, 16, 0, 0, 16, 0, 0.0])
    std = np.array([1, 1, 20, 1, 1, 20, 0.015, 0.015])
    np.testing.assert_allclose(
        numpy(transforms.projective_standardize(c, 32, 32)), (c - mean) / std,
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


def test_sample_projective_pixels_draws_whole_pixel_corners():
    n, height, width = 300, 32, 28
    m, c = transforms.sample_projective_pixels(n, 0, height, width)
    # Replay the draws (scale, quarter turns, x shifts, y shifts) in order.
    g = keras.random.SeedGenerator(0)
    s = numpy(keras.random.uniform((n,), minval=0.8, maxval=1.2, seed=g))
    k = numpy(keras.random.randint((n,), 0, 4, seed=g))
    sx = numpy(keras.random.randint((n, 4, 1), -3, 4, seed=g))  # int(.125 * 28)
    sy = numpy(keras.random.randint((n, 4, 1), -4, 5, seed=g))  # int(.125 * 32)
    assert set(np.unique(k)) == {0, 1, 2, 3}
    assert set(np.unique(sx)) == set(range(-3, 4))
    assert set(np.unique(sy)) == set(range(-4, 5))
    m2, c2 = transforms.projective_pixels_from(
        s, k, np.concatenate([sx, sy], -1).astype("float32"), height, width
    )
    np.testing.assert_allclose(numpy(c), numpy(c2), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(numpy(m), numpy(m2), rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(numpy(c)))
