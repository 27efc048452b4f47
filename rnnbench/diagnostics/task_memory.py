"""The task memory probe: is what the task needs decodable from h_t, at every delay since it was
presented, on the task's own inputs?

The memory capacity of :mod:`rnnbench.diagnostics.memory` (Jaeger 2001, GMD Report 152) is
task-agnostic: it drives the network with i.i.d. inputs and asks a linear readout to recall every
input k steps back. A network trained on the adding problem learns to ignore the unmarked values,
so by that measure a failing tanh RNN "remembers more" than a GRU that solves the task (measured:
memory capacity 3.6 against 0.86). This probe asks what the task asks instead, in the probing
(decoding) tradition of reading a representation with a linear classifier trained on it (Alain &
Bengio 2016, "Understanding intermediate layers using linear classifier probes"; Hupkes, Veldhoen
& Zuidema 2018, "diagnostic classifiers"): for each piece of information the task needs (a
:class:`rnnbench.tasks.MemoryItem`), on sequences of the task itself, can a linear readout of
h_{presented + d} recover it, for every delay d?

Readouts are ridge regressions, as in :mod:`~rnnbench.diagnostics.memory`: centred, penalty
``ridge * rows``, fitted on one half of the sequences and scored on the other. An item with
``classes`` is scored by the held-out accuracy of the argmax of a least-squares fit to one-hot
targets (chance ``1/classes``), a regression item by held-out r^2 clamped at 0 (chance 0). At
delay d an item's rows are the sequences with ``presented + d < T``; an (item, delay) with fewer
than :data:`MIN_ROWS` fit or test rows is skipped, and the score of a delay is the mean over the
items evaluated there (at long delays, only the items presented early).

Task span: the largest evaluated delay d such that the normalised score ``(score - chance) /
(1 - chance)`` is >= :data:`TASK_SPAN_SCORE` at every evaluated delay <= d. It is 0 when only
delay 0 passes, and also when even delay 0 fails (``score[0]`` tells these apart); ``None`` when
no delay is evaluable (too few sequences). ``needed`` is the delay at which the task reads its
items: a span below it says the information is no longer linearly decodable when it is used.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from rnnbench.errors import ConfigError
from rnnbench.models import RecurrentModel
from rnnbench.tasks import MemoryItem, Task

#: the normalised score at or above which an item counts as held, for the task span
TASK_SPAN_SCORE = 0.5
#: at most this many delays are evaluated (evenly spaced beyond it, 0 and the last included)
MAX_DELAYS = 256
#: an (item, delay) needs at least this many fit rows and as many test rows
MIN_ROWS = 8
#: the float64 features gathered for one batch of readouts stay under this many bytes
CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class TaskProbeResult:
    """What :func:`task_memory_probe` measured; the module docstring defines each field."""

    delays: list[int]  # the delays evaluated, ascending from 0
    score: list[float]  # per delay: held-out accuracy or r^2, the mean over the items
    chance: float  # the score of a readout that knows nothing: 1/classes, or 0 for r^2
    metric: str  # "accuracy" or "r2"
    span: int | None  # the task memory span; None when no delay is evaluable
    needed: int  # the (lower) median over items and sequences of the delay the task reads at


@dataclass(frozen=True)
class _Item:
    """One memory item as numpy arrays."""

    presented: np.ndarray  # int64 [B]
    columns: np.ndarray  # float64 [B, K]: the one-hot labels, or the values
    labels: np.ndarray | None  # int64 [B] for a classification item
    last: int  # the largest delay with MIN_ROWS fit and test rows; -1 if none


@dataclass
class _Group:
    """The (item, delay) pairs that read the same h rows: for the copy task, every item at one
    absolute step, so their readouts share one Gram matrix."""

    rows: np.ndarray  # the sequences read, ascending (the fit half's first)
    positions: np.ndarray  # the step read in each
    n_fit: int
    members: list[tuple[int, int]] = field(default_factory=list)  # (item, index into delays)


def task_memory_probe(
    model: RecurrentModel,
    task: Task,
    generator: torch.Generator,
    *,
    size: int,
    ridge: float,
) -> TaskProbeResult | None:
    """Decode ``task.memory_items`` from ``model.core``'s h_t at every delay, on ``size``
    sequences of ``task.sample`` (half to fit the readouts, half to score them); ``None`` when
    the task has no items. The global RNG, the model's mode and its gradients are left as
    they were."""
    batch = task.sample(size, generator)
    memory = task.memory_items(batch)
    if not memory:
        return None
    steps = int(batch.x.shape[1])
    classes = _check(task, memory, len(batch), steps)
    half = len(batch) // 2
    items = [_prepare(item, steps, half) for item in memory]
    delays = _delays(max(item.last for item in items))
    needed = np.concatenate([item.needed.detach().cpu().numpy() for item in memory])
    chance = 1.0 / classes if classes else 0.0
    result = TaskProbeResult(
        delays=delays,
        score=[],
        chance=chance,
        metric="accuracy" if classes else "r2",
        span=None,
        needed=int(np.sort(needed)[(len(needed) - 1) // 2]),
    )
    if not delays:
        return result
    hidden = _hidden(model, batch.x)
    score = _scores(hidden, items, delays, ridge)
    return dataclasses.replace(result, score=score, span=_span(delays, score, chance))


def check_memory_items(task: Task, size: int = 16) -> None:
    """The task's ``memory_items`` on a few of its sequences, as a run's probe would read them:
    a one-line :class:`ConfigError` for items the probe would refuse (or a hook that raises),
    so that a sweep with such a task is refused before it trains (exit 2), not recorded as an
    error in every run. The task's sampler draws from its own generator: no global state."""
    batch = task.sample(size, torch.Generator().manual_seed(0))
    try:
        memory = task.memory_items(batch)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"tasks.{task.name}: memory_items raised {type(exc).__name__}: {exc}"
        ) from None
    if memory:
        _check(task, memory, len(batch), int(batch.x.shape[1]))


def _check(task: Task, memory: list[MemoryItem], size: int, steps: int) -> int:
    """The items' common ``classes``, or a one-line refusal of the task's items."""
    where = f"tasks.{task.name}"
    for item in memory:
        if item.presented.shape[0] != size:
            raise ConfigError(
                f"{where}: memory item {item.name!r} has {item.presented.shape[0]} sequences, "
                f"the batch {size}"
            )
        if bool(((item.presented < 0) | (item.presented >= steps)).any()):
            raise ConfigError(
                f"{where}: memory item {item.name!r}: presented must be a step in [0, {steps})"
            )
    first = memory[0]
    for item in memory[1:]:
        if item.classes != first.classes:
            raise ConfigError(
                f"{where}: all memory items must be decoded one way (one score per delay): "
                f"{first.name!r} is decoded by {_metric(first)} but {item.name!r} by "
                f"{_metric(item)}"
            )
    return first.classes


def _metric(item: MemoryItem) -> str:
    return f"accuracy ({item.classes} classes)" if item.classes else "r2"


def _prepare(item: MemoryItem, steps: int, half: int) -> _Item:
    presented = item.presented.detach().cpu().numpy().astype(np.int64)
    target = item.target.detach().cpu()
    if item.classes:
        labels = target.numpy().astype(np.int64)
        columns = np.eye(item.classes)[labels]
    else:
        labels = None
        columns = target.double().numpy()
    last = min(_last_delay(presented[:half], steps), _last_delay(presented[half:], steps))
    return _Item(presented, columns, labels, last)


def _last_delay(presented: np.ndarray, steps: int) -> int:
    """The largest d with at least MIN_ROWS sequences where ``presented + d < steps``."""
    if len(presented) < MIN_ROWS:
        return -1
    return steps - 1 - int(np.partition(presented, MIN_ROWS - 1)[MIN_ROWS - 1])


def _delays(last: int) -> list[int]:
    """Every delay 0..last, or MAX_DELAYS of them evenly spaced (0 and ``last`` included)."""
    if last + 1 <= MAX_DELAYS:
        return list(range(last + 1))
    # spacing > 1, so the rounded points are distinct
    return [int(d) for d in np.linspace(0, last, MAX_DELAYS).round()]


def _hidden(model: RecurrentModel, x: torch.Tensor) -> np.ndarray:
    """The top layer's h_t ``[B, T, H]`` on the CPU, in the core's dtype (the readouts cast
    what they gather to float64)."""
    device = next(model.parameters()).device
    accelerators = [] if device.type == "cpu" else [device]
    # no_grad: no graph, no .grad touched; fork_rng: a stochastic cell's draws do not move the
    # caller's generators
    with torch.no_grad(), torch.random.fork_rng(devices=accelerators, device_type=device.type):
        hidden = model.core(x.to(device))
    return hidden.detach().cpu().numpy()


def _scores(hidden: np.ndarray, items: list[_Item], delays: list[int], ridge: float) -> list[float]:
    """Per delay, the mean held-out score over the items evaluated there."""
    totals = np.zeros(len(delays))
    counts = np.zeros(len(delays))
    for bucket in _buckets(_groups(items, delays, hidden.shape[1]), hidden.shape[2]):
        where, score = _fit_bucket(hidden, items, bucket, ridge)
        np.add.at(totals, where, score)
        np.add.at(counts, where, 1.0)
    return [float(v) for v in totals / counts]


def _groups(items: list[_Item], delays: list[int], steps: int) -> list[_Group]:
    """One group per distinct set of h rows read, with the (item, delay) pairs that read it."""
    groups: dict[bytes, _Group] = {}
    half = len(items[0].presented) // 2
    for i, item in enumerate(items):
        for k, delay in enumerate(delays):
            if delay > item.last:
                break
            read = item.presented + delay
            valid = read < steps
            key = np.where(valid, read, -1).tobytes()
            if key not in groups:
                rows = np.flatnonzero(valid)
                groups[key] = _Group(rows, read[rows], int(np.searchsorted(rows, half)))
            groups[key].members.append((i, k))
    return list(groups.values())


def _buckets(groups: list[_Group], hidden_size: int) -> list[list[_Group]]:
    """Groups of the same shape (fit rows, test rows, items), solved as one batch, in chunks
    whose gathered features stay under :data:`CHUNK_BYTES`."""
    buckets: dict[tuple[int, int, tuple[int, ...]], list[_Group]] = defaultdict(list)
    for group in groups:
        items = tuple(i for i, _ in group.members)
        buckets[(group.n_fit, len(group.rows), items)].append(group)
    chunks = []
    for bucket in buckets.values():
        step = max(1, CHUNK_BYTES // (8 * hidden_size * len(bucket[0].rows)))
        chunks += [bucket[start : start + step] for start in range(0, len(bucket), step)]
    return chunks


def _fit_bucket(
    hidden: np.ndarray, items: list[_Item], bucket: list[_Group], ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fit every group's readouts of the bucket's items at once; return the delay index and
    the held-out score of each (group, item), flattened alike."""
    ids = [i for i, _ in bucket[0].members]
    n_fit = bucket[0].n_fit
    rows = np.stack([group.rows for group in bucket])  # [G, N]
    features = hidden[rows, np.stack([group.positions for group in bucket])].astype(np.float64)
    targets = np.concatenate([items[i].columns for i in ids], axis=1)[rows]  # [G, N, K]
    predicted = _ridge(features[:, :n_fit], targets[:, :n_fit], features[:, n_fit:], ridge)
    truth = targets[:, n_fit:]
    if items[ids[0]].labels is not None:
        # a linear classifier: the argmax of the least-squares fit to the one-hot labels
        shape = (*predicted.shape[:2], len(ids), -1)
        labels = np.stack([_labels(items[i]) for i in ids], axis=1)[rows[:, n_fit:]]
        score = (predicted.reshape(shape).argmax(-1) == labels).mean(1)  # [G, items]
    else:
        starts = np.cumsum([0] + [items[i].columns.shape[1] for i in ids[:-1]])
        error = np.add.reduceat(np.square(truth - predicted).sum(1), starts, axis=1)
        spread = np.square(truth - truth.mean(1, keepdims=True)).sum(1)
        total = np.add.reduceat(spread, starts, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(total > 0, np.maximum(1.0 - error / total, 0.0), 0.0)
    where = np.array([[k for _, k in group.members] for group in bucket])
    return where.ravel(), score.ravel()


def _labels(item: _Item) -> np.ndarray:
    assert item.labels is not None
    return item.labels


def _ridge(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, ridge: float) -> np.ndarray:
    """Held-out predictions of centred ridge readouts, penalty ``ridge * rows``, for a batch of
    fits: ``x_fit`` [G, N, H], ``y_fit`` [G, N, K], ``x_test`` [G, M, H] -> [G, M, K]. With more
    features than rows, the same readout in its dual form (an N x N system, not H x H)."""
    n, h = x_fit.shape[1:]
    x_mean, y_mean = x_fit.mean(1, keepdims=True), y_fit.mean(1, keepdims=True)
    xc, yc = x_fit - x_mean, y_fit - y_mean
    test = x_test - x_mean
    if h <= n:
        gram = xc.transpose(0, 2, 1) @ xc + ridge * n * np.eye(h)
        return test @ _solve(gram, xc.transpose(0, 2, 1) @ yc, ridge) + y_mean
    # (X'X + aI)^-1 X' = X'(XX' + aI)^-1
    kernel = xc @ xc.transpose(0, 2, 1) + ridge * n * np.eye(n)
    return (test @ xc.transpose(0, 2, 1)) @ _solve(kernel, yc, ridge) + y_mean


def _solve(matrix: np.ndarray, rhs: np.ndarray, ridge: float) -> np.ndarray:
    if ridge > 0:  # positive definite
        return np.linalg.solve(matrix, rhs)
    # without a penalty a constant unit or dependent units make it singular: the minimum-norm
    # least-squares readout
    return np.linalg.pinv(matrix, hermitian=True) @ rhs


def _span(delays: list[int], score: list[float], chance: float) -> int:
    span = 0
    for delay, value in zip(delays, score, strict=True):
        if (value - chance) / (1.0 - chance) < TASK_SPAN_SCORE:
            break
        span = delay
    return span
