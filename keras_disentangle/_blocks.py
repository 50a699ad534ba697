"""Pairwise terms in bounded row blocks: the value and its gradient in one pass.

A pairwise term ``F = sum_v f(S)`` of a score matrix ``S = R C^T`` (``R`` the
``n x u`` rows, ``C`` the ``M x ... x u`` columns, ``S`` of shape
``n x M x ...``) needs, differentiated the usual way, the whole ``S`` and
its mask kept for the backward pass: ``O(n M)`` memory, 16 GiB in float32
for ``n = M = 65,536``. Here the rows are taken ``b`` at a time in a loop
(``keras.ops.fori_loop``, one compiled loop body, not an unrolled program); each
block's scores ``S_b = R_b C^T`` give the block's values and the derivative
``G_b = dF_b / dS_b`` at once, and the gradients

``dF/dR_b = G_b C``,  ``dF/dC = sum_b G_b^T R_b``

are accumulated in the same pass. The backward pass only scales them by the
upstream gradient (``keras.ops.custom_gradient``), so memory is
``O((n + M) u + b M)`` whatever ``n`` and ``M``, and the work is the three
products of the usual forward and backward (no recomputation). The price:
a forward pass without a gradient (evaluation) also computes the two
gradient products.

Sizes known only at run time (a ``tf.function`` traced with a ``None``
batch, a ``tf.distribute`` replica's batch, a batch gathered from the
replicas) are blocked too: :func:`one_or_row_blocks` then picks one block or
the loop at run time (``keras.ops.cond``), and the loop's block count, padding
and slices are run-time tensors.

Only public ``keras.ops`` are used; the block function knows nothing of
backends. ``keras_disentangle.penalties`` (the KL-margin hinges) and
``keras_disentangle.estimators`` use it beyond a size where one block is
cheaper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keras import ops

from keras_disentangle._backend import matmul

__all__ = [
    "rows_per_block",
    "one_or_row_blocks",
    "size",
    "fused_row_blocks",
    "scan_row_blocks",
]

#: The largest pair block differentiated the usual way (one ``n x M`` block,
#: 64 MiB in float32); beyond it the blocked loop bounds memory.
MAX_BLOCK_ELEMENTS = 2**24

Block = Callable[..., tuple[Any, Any]]


def size(x: Any, axis: int) -> Any:
    """``x.shape[axis]``: a Python int when known when traced, else the
    run-time size (a scalar int32 tensor; only TensorFlow traces with
    unknown sizes)."""
    known = x.shape[axis]
    return known if isinstance(known, int) else ops.shape(x)[axis]


def rows_per_block(n_rows: Any, width: Any, block_elements: int) -> int | None:
    """Rows per block so that a block of ``rows x width`` scores holds at most
    ``block_elements`` (at least one row), or None for one block.

    None when all ``n_rows x width`` scores fit in ``MAX_BLOCK_ELEMENTS``,
    or a size is only known at run time (see :func:`one_or_row_blocks`,
    which decides then).

    Example:

        >>> rows_per_block(65536, 65536, 2**19)
        8
        >>> rows_per_block(1024, 1024, 2**19) is None
        True
    """
    if not isinstance(n_rows, int) or not isinstance(width, int):
        return None
    if n_rows * width <= MAX_BLOCK_ELEMENTS:
        return None
    return max(1, min(n_rows, block_elements // max(width, 1)))


def one_or_row_blocks(
    n_rows: Any,
    width: Any,
    block_elements: int,
    one_block: Callable[[], tuple],
    row_blocks: Callable[[Any], tuple],
    one_block_if: Any = None,
    collective_inside: bool = False,
) -> tuple:
    """``one_block()`` when all ``n_rows x width`` scores fit in
    ``MAX_BLOCK_ELEMENTS`` (or ``one_block_if`` holds), else
    ``row_blocks(b)``, ``b`` rows per block of at most ``block_elements``
    scores.

    Sizes known when traced (Python ints) choose when traced: the same
    program as before for one block. A size known only at run time (a
    scalar tensor from :func:`size`) chooses at run time
    (``keras.ops.cond``, both traced), ``b`` a tensor too. Both functions
    return a tuple, None in the same places.

    ``collective_inside``: the functions call a collective (an all-gather).
    ``tf.distribute`` refuses one inside a ``cond``, so a size known only
    at run time then always takes ``row_blocks``, with ``b = n_rows`` (one
    block in the loop: the same value up to rounding) when they fit.

    Example:

        >>> one_or_row_blocks(4, 4, 2**19, lambda: ("one",), lambda b: (b,))
        ('one',)
        >>> one_or_row_blocks(65536, 65536, 2**19, lambda: ("one",), lambda b: (b,))
        (8,)
    """
    if isinstance(n_rows, int) and isinstance(width, int):
        rows = rows_per_block(n_rows, width, block_elements)
        if rows is None or (one_block_if is not None and one_block_if):
            return one_block()
        return row_blocks(rows)
    n_rows = ops.cast(n_rows, "int32")
    width = ops.maximum(ops.cast(width, "int32"), 1)
    rows = ops.maximum(1, ops.minimum(n_rows, block_elements // width))
    # n w <= MAX as n <= MAX // w: no int32 overflow (65,536^2 = 2^32).
    fits = ops.less_equal(n_rows, MAX_BLOCK_ELEMENTS // width)
    if one_block_if is not None:
        fits = ops.logical_or(fits, one_block_if)
    if collective_inside:
        return row_blocks(ops.where(fits, ops.maximum(n_rows, 1), rows))
    missing = list[int]()  # the None outputs' places (no annotation: autograph)

    def tensors(outputs: tuple) -> tuple:
        missing[:] = [i for i, x in enumerate(outputs) if x is None]
        return tuple(x for x in outputs if x is not None)

    chosen = ops.cond(
        fits, lambda: tensors(one_block()), lambda: tensors(row_blocks(rows))
    )
    chosen = list(chosen)
    for i in missing:
        chosen.insert(i, None)
    return tuple(chosen)


def _pad_rows(x: Any, n_rows: Any) -> Any:
    """``x`` (n, ...) padded with zero rows to ``n_rows``."""
    missing = n_rows - size(x, 0)
    if isinstance(missing, int) and not missing:
        return x
    zeros = ops.zeros((missing,) + tuple(x.shape[1:]), dtype=x.dtype)
    return ops.concatenate([x, zeros], axis=0)


def _row_block(
    i: Any, padded: list, flat_columns: Any, b: Any, column_shape: tuple, n: Any
) -> tuple[Any, Any, tuple, Any, Any]:
    """Block ``i``: its first row's index, its rows, its slices of the row
    data, its ``(b, M, ...)`` scores and its ``(b,)`` mask of real rows."""
    start = ops.cast(i, "int32") * b
    rows_b, *data_b = (
        ops.slice(x, (start,) + (0,) * (len(x.shape) - 1), (b,) + tuple(x.shape[1:]))
        for x in padded
    )
    scores = ops.reshape(
        matmul(rows_b, ops.transpose(flat_columns)), (b,) + column_shape
    )
    valid = ops.cast(start + ops.arange(b, dtype="int32") < n, rows_b.dtype)
    return start, rows_b, tuple(data_b), scores, valid


def fused_row_blocks(
    block: Block,
    rows: Any,
    columns: Any,
    *,
    rows_per_block: int,
    n_values: int,
    row_data: Sequence[Any] = (),
    column_data: Sequence[Any] = (),
) -> Any:
    """``sum_b block(S_b, ...)[0]`` over row blocks, with its gradient.

    ``S_b[i, j, ...] = sum_u rows[start + i, u] columns[j, ..., u]``, one
    matrix product per block. ``block(scores, valid, start, row_data_b,
    column_data)`` gets a block's ``(b, M, ...)`` scores, a ``(b,)`` float
    mask of the rows that exist (the last block is padded with zero rows),
    the index of its first row (a scalar int32 tensor), its slices of
    ``row_data`` and all of ``column_data``; it returns ``(values, grad)``:
    a ``(n_values,)`` vector, summed over the blocks, and ``grad``, the
    derivative of ``values[0]`` with respect to ``scores`` (same shape).

    Args:
        block: the block function above (pure ``keras.ops``).
        rows: ``(n, u)`` float tensor, ``u`` known when traced.
        columns: ``(M, ..., u)`` float tensor, all but ``M`` known when
            traced.
        rows_per_block: ``b``, from :func:`rows_per_block` or
            :func:`one_or_row_blocks` (a scalar tensor there when a size
            is known only at run time).
        n_values: the length of ``values``.
        row_data: ``(n, ...)`` float tensors cut into blocks with the rows
            (labels, weights); no gradient.
        column_data: float tensors passed whole; no gradient.

    Returns:
        The ``(n_values,)`` sums. ``values[0]`` carries the gradient with
        respect to ``rows`` and ``columns``; the other entries (pair counts,
        statistics) carry none.
    """
    n, width = size(rows, 0), rows.shape[-1]
    column_shape = tuple(size(columns, a) for a in range(len(columns.shape) - 1))
    b = rows_per_block
    n_blocks = (n + b - 1) // b
    row_data = tuple(row_data)
    column_data = tuple(column_data)

    @ops.custom_gradient
    def run(rows: Any, columns: Any, *data: Any) -> Any:
        flat_columns = ops.reshape(columns, (-1, width))
        column_part = data[len(row_data) :]
        padded = [_pad_rows(x, n_blocks * b) for x in (rows,) + data[: len(row_data)]]

        def step(i: Any, carry: Any) -> Any:
            d_rows, d_columns, values = carry
            start, rows_b, data_b, scores, valid = _row_block(
                i, padded, flat_columns, b, column_shape, n
            )
            part, grad = block(scores, valid, start, data_b, column_part)
            grad = ops.reshape(ops.cast(grad, rows.dtype), (b, -1))
            d_rows = ops.slice_update(d_rows, (start, 0), matmul(grad, flat_columns))
            d_columns = d_columns + matmul(ops.transpose(grad), rows_b)
            return d_rows, d_columns, values + ops.cast(part, rows.dtype)

        init = (
            ops.zeros_like(padded[0]),
            ops.zeros_like(flat_columns),
            ops.zeros((n_values,), rows.dtype),
        )
        d_rows, d_columns, values = ops.fori_loop(0, n_blocks, step, init)
        d_rows = d_rows[:n]
        d_columns = ops.reshape(d_columns, column_shape + (width,))

        def grad_fn(*args: Any, upstream: Any = None) -> Any:
            if upstream is None:
                (upstream,) = args
            scale = upstream[0]
            return (scale * d_rows, scale * d_columns) + tuple(
                ops.zeros_like(d) for d in data
            )

        return values, grad_fn

    return run(rows, columns, *row_data, *column_data)


def scan_row_blocks(
    block: Block,
    rows: Any,
    columns: Any,
    init: Any,
    *,
    rows_per_block: int,
    row_data: Sequence[Any] = (),
    column_data: Sequence[Any] = (),
) -> Any:
    """A carry folded over the row blocks of ``S = rows columns^T``, no gradient.

    The forward-only companion of :func:`fused_row_blocks`, for a statistic
    of all the scores that later blocks need (a global maximum, a
    log-sum-exp): ``carry = block(scores, valid, start, row_data_b,
    column_data, carry)`` for each block in turn, with the same arguments
    as there; only one block of scores exists at a time. The inputs are
    taken without their gradient (``stop_gradient``).

    Args:
        block: the block function above (pure ``keras.ops``).
        rows: ``(n, u)`` float tensor, ``u`` known when traced.
        columns: ``(M, ..., u)`` float tensor, all but ``M`` known when
            traced.
        init: the initial carry (a tensor or a tuple of tensors).
        rows_per_block: ``b``, from :func:`rows_per_block` or
            :func:`one_or_row_blocks` (a scalar tensor there when a size
            is known only at run time).
        row_data: ``(n, ...)`` tensors cut into blocks with the rows.
        column_data: tensors passed whole.

    Returns:
        The last carry.

    Example:

        >>> import numpy as np
        >>> from keras import ops
        >>> top = scan_row_blocks(
        ...     lambda s, valid, start, r, c, carry: ops.maximum(carry, ops.max(s)),
        ...     np.eye(3), np.arange(6.0).reshape(2, 3), -np.inf, rows_per_block=2)
        >>> float(top)
        5.0
    """
    rows, columns = (
        ops.stop_gradient(ops.convert_to_tensor(x)) for x in (rows, columns)
    )
    n, width = size(rows, 0), rows.shape[-1]
    column_shape = tuple(size(columns, a) for a in range(len(columns.shape) - 1))
    b = rows_per_block
    n_blocks = (n + b - 1) // b
    flat_columns = ops.reshape(columns, (-1, width))
    column_part = tuple(
        ops.stop_gradient(ops.convert_to_tensor(x)) for x in column_data
    )
    padded = [
        _pad_rows(ops.stop_gradient(ops.convert_to_tensor(x)), n_blocks * b)
        for x in (rows, *row_data)
    ]

    def step(i: Any, carry: Any) -> Any:
        start, _, data_b, scores, valid = _row_block(
            i, padded, flat_columns, b, column_shape, n
        )
        return block(scores, valid, start, data_b, column_part, carry)

    return ops.fori_loop(0, n_blocks, step, init)
