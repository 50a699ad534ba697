"""Statistics over seeds: means with confidence intervals, paired differences.

A table of means ± standard deviations over three seeds cannot rank variants
whose seed spreads (0.04-0.06 AMI) are as large as their gaps. Every
experiment trains each variant with the same seeds, so the seed is a
blocking factor: the difference ``variant - baseline`` on the same seed
removes the part of the noise the two runs share (data split, initial
weights drawn from the same seed), and its Student-t interval over seeds
says whether the gain is larger than what remains.

- :func:`t_interval`: mean and two-sided Student-t confidence interval of a
  sample, ``mean ± t_{n-1, (1+c)/2} * s / sqrt(n)`` with the sample standard
  deviation ``s`` (``ddof=1``); for one value the interval is the value.
- :func:`paired_differences`: per variant, the paired differences to the
  baseline over the seeds both ran, their mean and interval, how many seeds
  the variant won, and whether the interval excludes 0 ("significant at the
  95% level", the paired t-test's decision at alpha = 0.05).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["t_interval", "paired_differences", "difference_rows", "seed_table"]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample std and Student-t confidence interval of ``values``.

    Returns:
        ``{"n", "mean", "std", "low", "high", "half"}`` (``half`` is the
        half-width; ``std`` uses ``ddof=1``, 0 for one value).

    >>> row = t_interval([0.4, 0.5, 0.6])
    >>> [round(row[k], 4) for k in ("mean", "std", "low", "high")]
    [0.5, 0.1, 0.2516, 0.7484]
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(
            "Invalid value for argument values: expected a non-empty 1-D "
            f"sequence of finite numbers. Received: values={list(values)}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(
            "Invalid value for argument confidence: expected a number in (0, 1). "
            f"Received: confidence={confidence}"
        )
    n = int(x.size)
    mean = float(np.mean(x))
    std = float(np.std(x, ddof=1)) if n > 1 else 0.0
    half = (
        float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * std / math.sqrt(n)
        if n > 1
        else 0.0
    )
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "low": mean - half,
        "high": mean + half,
        "half": half,
    }


def seed_table(
    rows: Iterable[dict], by: str, key: str, seed: str = "seed"
) -> dict[str, dict[int, float]]:
    """``{group: {seed: value}}`` from per-run rows (a seed once per group)."""
    table: dict[str, dict[int, float]] = {}
    for row in rows:
        group = table.setdefault(str(row[by]), {})
        run = int(row[seed])
        if run in group:
            raise ValueError(f"seed {run} appears twice for {by}={row[by]!r}")
        group[run] = float(row[key])
    return table


def paired_differences(
    rows: Iterable[dict],
    by: str,
    key: str,
    baseline: str,
    seed: str = "seed",
    confidence: float = 0.95,
) -> list[dict]:
    """Each group's ``key`` minus the baseline's, paired by seed.

    Args:
        rows: one row per run, with the columns ``by``, ``seed`` and ``key``.
        by: the column naming the variant.
        key: the score compared (e.g. ``"ami"``).
        baseline: the value of ``by`` that the others are compared with.
        seed: the column that pairs runs.
        confidence: the level of the intervals.

    Returns:
        One dict per variant other than the baseline, in the order of first
        appearance: ``variant``, ``n`` (seeds both ran), ``mean``, ``std``,
        ``low``, ``high`` (the interval of the mean difference), ``wins``
        (seeds where the variant scored higher) and ``significant`` (the
        interval excludes 0).

    >>> rows = [{"v": v, "seed": s, "ami": a} for v, s, a in [
    ...     ("base", 0, .40), ("base", 1, .46), ("base", 2, .37),
    ...     ("pen", 0, .50), ("pen", 1, .48), ("pen", 2, .51)]]
    >>> d = paired_differences(rows, "v", "ami", "base")[0]
    >>> d["variant"], d["wins"], round(d["mean"], 3), round(d["low"], 3)
    ('pen', 3, 0.087, -0.065)
    >>> d["significant"]  # three wins out of three seeds, and still not
    False
    """
    table = seed_table(rows, by, key, seed)
    if baseline not in table:
        raise ValueError(
            f"Invalid value for argument baseline: no rows with {by}={baseline!r}. "
            f"Received: {sorted(table)}"
        )
    reference = table[baseline]
    out = []
    for variant, values in table.items():
        if variant == baseline:
            continue
        common = sorted(set(values) & set(reference))
        if not common:
            continue
        diffs = [values[s] - reference[s] for s in common]
        interval = t_interval(diffs, confidence)
        out.append(
            {
                "variant": variant,
                "n": interval["n"],
                "mean": interval["mean"],
                "std": interval["std"],
                "low": interval["low"],
                "high": interval["high"],
                "wins": sum(d > 0 for d in diffs),
                "significant": interval["n"] > 1
                and (interval["low"] > 0 or interval["high"] < 0),
            }
        )
    return out


def difference_rows(
    rows: Iterable[dict],
    by: str,
    keys: Sequence[str],
    baseline: str,
    seed: str = "seed",
) -> list[dict]:
    """:func:`paired_differences` of several scores, as flat table rows.

    One row per (variant, score): ``variant``, ``score``, ``n``,
    ``difference`` (the mean paired difference), ``low``, ``high`` (its 95%
    interval), ``wins`` and ``significant`` (``"yes"`` / ``"no"``).
    """
    rows = list(rows)
    out = []
    for key in keys:
        for d in paired_differences(rows, by, key, baseline, seed):
            out.append(
                {
                    "variant": d["variant"],
                    "score": key,
                    "n": d["n"],
                    "difference": d["mean"],
                    "low": d["low"],
                    "high": d["high"],
                    "wins": d["wins"],
                    "significant": "yes" if d["significant"] else "no",
                }
            )
    return out
