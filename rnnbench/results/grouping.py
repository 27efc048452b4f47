"""Groups: the runs a summary pools as seeds of one configuration.

A group is every run that shares :data:`GROUP_KEYS` and the values of its sweep's other axes
(``[grid.train] lr = [...]``: the run config's ``axes``), so runs at two learning rates are
never pooled as seeds; reports, task spans, baselines and the gate all pool by it, so it is
defined once, here. A group must hold one configuration and one version of the user code: a
store filled by two versions of a sweep file, or before and after a cell was edited, would
otherwise pool different things as seeds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.config.hashing import code_difference, config_difference, group_hash
from rnnbench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

#: The fields whose values name a group; the runs of a group differ only in their seed.
GROUP_KEYS = ("task", "arch", "seq_len", "clip")
#: A group's keys but the sequence length: a condition, whose task span is read across T.
CONDITION_KEYS = tuple(key for key in GROUP_KEYS if key != "seq_len")


def axes_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The swept values of a run beyond :data:`GROUP_KEYS` (``{"train.lr": 0.003}``): a
    group key's ``axes``, else its config's; empty for a run of the five fixed axes only."""
    axes = record.get("axes")
    if axes is None:
        axes = (record.get("config") or {}).get("axes")
    return dict(axes or {})


def group_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The key of a run's group (or of a group's ``key`` mapping): the :data:`GROUP_KEYS`
    values, then its swept values as canonical JSON."""
    return (*(record[k] for k in GROUP_KEYS), json.dumps(axes_of(record), sort_keys=True))


def group_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """A group's key as a mapping: the :data:`GROUP_KEYS`, and ``axes`` where it has any."""
    axes = axes_of(record)
    return {k: record[k] for k in GROUP_KEYS} | ({"axes": axes} if axes else {})


def short_names(paths: Iterable[str]) -> dict[str, str]:
    """Each swept field's display name: its last name ('lr' for 'train.lr'), the whole path
    where two fields share it."""
    paths = list(paths)
    short = [p.rsplit(".", 1)[-1] for p in paths]
    return {p: s if short.count(s) == 1 else p for p, s in zip(paths, short, strict=True)}


def variant(axes: Mapping[str, Any]) -> str:
    """The swept values as a label: 'lr=0.003 init=orthogonal' ('' for none)."""
    names = short_names(axes)
    return " ".join(f"{names[p]}={_value(v)}" for p, v in axes.items())


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def group_label(key: Mapping[str, Any]) -> str:
    label = f"{key['task']} T={key['seq_len']} {key['arch']} clip={key['clip']}"
    swept = variant(axes_of(key))
    return f"{label} {swept}" if swept else label


def axis_columns(configs: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """The swept fields of a set of runs (their configs), in the order the sweeps list them:
    the columns ``results`` and :func:`~rnnbench.results.store.load_results` add."""
    seen: dict[str, None] = {}
    for config in configs:
        for path in (config or {}).get("axes") or {}:
            seen.setdefault(path, None)
    return list(seen)


def check_one_configuration(records: Iterable[Mapping[str, Any]], where: str) -> None:
    """Raise :class:`ConfigError` if a group of ``records`` holds runs of different
    configurations (a store filled by two versions of a sweep file, say): summaries pool a
    group's runs as seeds of one configuration, and would silently mix them."""
    first: dict[tuple[Any, ...], tuple[str, Mapping[str, Any]]] = {}  # (hash, config)
    clash: tuple[tuple[Any, ...], Mapping[str, Any]] | None = None
    code_clash: tuple[tuple[Any, ...], str] | None = None
    sweeps: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for record in records:
        key = group_key(record)
        config = record.get("config") or {}
        sweeps[key].add(str(record.get("sweep")))
        digest = group_hash(config)
        known = first.setdefault(key, (digest, config))
        if clash is None and known[0] != digest:
            clash = (key, config)
        if code_clash is None and (edit := code_difference(known[1], config)):
            code_clash = (key, edit)
    if clash is not None:
        key, config = clash
        raise ConfigError(
            f"{where}: group {group_label(_key_fields(key))} holds runs "
            f"of different configurations ({config_difference(first[key][1], config)}; sweeps: "
            f"{', '.join(sorted(sweeps[key]))}); pass --sweep FILE to take one sweep file's runs"
        )
    if code_clash is not None:
        key, edit = code_clash
        raise ConfigError(
            f"{where}: group {group_label(_key_fields(key))} holds runs of two versions of the "
            f"user code: {edit}; pass --sweep FILE to take the runs of the code as it is now "
            "(every run of a sweep carries the source of its imports, built-in architectures' "
            "runs too: an imported module may register what any run uses)"
        )


def _key_fields(key: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(GROUP_KEYS, key, strict=False)) | {"axes": json.loads(key[-1])}


def load_pooled_runs(store: str | Path, runs: Collection[str] | None = None) -> pd.DataFrame:
    """A store's runs (only ``runs``, if given: one sweep file's) for a summary that pools each
    group's runs as seeds (reports, task spans): refused where a group mixes configurations."""
    from rnnbench.results.store import load_results

    frame = load_results(store)
    if runs is not None:
        frame = frame[frame["run_id"].isin(runs)].reset_index(drop=True)
    check_one_configuration(
        frame[["sweep", *GROUP_KEYS, "config"]].to_dict("records"), f"--store {store}"
    )
    return frame
