"""Groups: the runs a summary pools as seeds of one configuration.

A group is every run that shares :data:`GROUP_KEYS`; reports, task spans, baselines and the
gate all pool by it, so it is defined once, here. A group must hold one configuration: a store
filled by two versions of a sweep file would otherwise pool different things as seeds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.config.hashing import config_difference, group_hash
from rnnbench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

#: The fields whose values name a group; the runs of a group differ only in their seed.
GROUP_KEYS = ("task", "arch", "seq_len", "clip")
#: A group's keys but the sequence length: a condition, whose task span is read across T.
CONDITION_KEYS = tuple(key for key in GROUP_KEYS if key != "seq_len")


def group_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(record[k] for k in GROUP_KEYS)


def group_label(key: Mapping[str, Any]) -> str:
    return f"{key['task']} T={key['seq_len']} {key['arch']} clip={key['clip']}"


def check_one_configuration(records: Iterable[Mapping[str, Any]], where: str) -> None:
    """Raise :class:`ConfigError` if a group of ``records`` holds runs of different
    configurations (a store filled by two versions of a sweep file, say): summaries pool a
    group's runs as seeds of one configuration, and would silently mix them."""
    first: dict[tuple[Any, ...], tuple[str, Mapping[str, Any]]] = {}  # (hash, config)
    clash: tuple[tuple[Any, ...], Mapping[str, Any]] | None = None
    sweeps: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for record in records:
        key = group_key(record)
        config = record.get("config") or {}
        sweeps[key].add(str(record.get("sweep")))
        digest = group_hash(config)
        known = first.setdefault(key, (digest, config))
        if clash is None and known[0] != digest:
            clash = (key, config)
    if clash is not None:
        key, config = clash
        raise ConfigError(
            f"{where}: group {group_label(dict(zip(GROUP_KEYS, key, strict=True)))} holds runs "
            f"of different configurations ({config_difference(first[key][1], config)}; sweeps: "
            f"{', '.join(sorted(sweeps[key]))}); pass --sweep FILE to take one sweep file's runs"
        )


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
