"""The query parameters that name a plan and a stream mode (schemas/serve-protocol.md §1,
§3), and the rank and world a trainer runs as."""

from __future__ import annotations

import os
from typing import Optional

__all__ = ["MODES", "OVERLONG", "TAILS", "add_mode", "mix_query", "mixture_name", "pack_query", "plan_query", "rank_and_world"]

TAILS = ("drop", "pad")
#: The stream modes of `Client.batches`; share mode has `Client.share` of its own.
MODES = ("partition", "replicate")
#: What packing does with a sample longer than a row.
OVERLONG = ("split", "drop")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def rank_and_world(rank: Optional[int] = None, world: Optional[int] = None) -> tuple[int, int]:
    """`rank` and `world`, each taken from RANK / WORLD_SIZE (as torchrun sets them) when
    None, else 0 / 1."""
    rank = _env_int("RANK", 0) if rank is None else int(rank)
    world = _env_int("WORLD_SIZE", 1) if world is None else int(world)
    if world < 1:
        raise ValueError(f"world must be at least 1, got {world}")
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in 0…{world - 1} for world {world}, got {rank}")
    return rank, world


def pack_query(pack: Optional[dict]) -> dict:
    """The query parameters of a packing (serve-protocol.md §1): `pack` is
    `{FIELD: L}` — pack the variable-length field FIELD into rows of L values — with
    optional `"window"` (samples per first-fit window, default 1024) and `"overlong"`
    (`"split"`, the default, or `"drop"`); None for unpacked batches."""
    if pack is None:
        return {}
    if not isinstance(pack, dict):
        raise TypeError(f"pack must be a dict such as {{'tokens': 2048}}, got {pack!r}")
    options = {key: value for key, value in pack.items() if key in ("window", "overlong")}
    fields = [(key, value) for key, value in pack.items() if key not in ("window", "overlong")]
    if len(fields) != 1:
        raise ValueError(f"pack names one field and its row length, such as {{'tokens': 2048}}, got {pack!r}")
    field, length = fields[0]
    if int(length) < 1:
        raise ValueError(f"the row length of {field} must be positive, got {length}")
    query = {"pack": f"{field}:{int(length)}"}
    if "window" in options:
        if int(options["window"]) < 1:
            raise ValueError(f"the packing window must be positive, got {options['window']}")
        query["pack_window"] = int(options["window"])
    if "overlong" in options:
        if options["overlong"] not in OVERLONG:
            raise ValueError(f"overlong must be one of {OVERLONG}, got {options['overlong']!r}")
        query["pack_overlong"] = options["overlong"]
    return query


def _weight_text(name: str, weight) -> str:
    """A weight as the daemon reads it: `0.6`, `repeat:2`, `choose:1000`."""
    if isinstance(weight, bool):
        raise TypeError(f"mix weight of {name!r} must be a number, ('repeat', R) or ('choose', N), got {weight!r}")
    if isinstance(weight, (int, float)):
        return repr(float(weight)) if isinstance(weight, float) else str(weight)
    if isinstance(weight, str) and weight.split(":", 1)[0] in ("repeat", "choose"):
        return weight
    if isinstance(weight, (tuple, list)) and len(weight) == 2 and weight[0] in ("repeat", "choose"):
        kind, value = weight
        if kind == "choose":
            return f"choose:{int(value)}"
        return f"repeat:{float(value)!r}" if isinstance(value, float) else f"repeat:{int(value)}"
    raise TypeError(f"mix weight of {name!r} must be a number, ('repeat', R) or ('choose', N), got {weight!r}")


def mix_query(mix: Optional[dict], epoch_size: Optional[int] = None) -> dict:
    """The query parameters of a mixture (serve-protocol.md §1, protocol 1.2): `mix` maps
    each served dataset's name to its weight — a proportion (`0.6`), `("repeat", R)`
    (passes per epoch) or `("choose", N)` (draws per epoch) — in `_source` order;
    `epoch_size` is the draws per epoch of proportion weights (default: the sources'
    sizes summed). None for one dataset."""
    if mix is None:
        if epoch_size is not None:
            raise ValueError("epoch_size applies to a mixture (mix=…) only")
        return {}
    if not isinstance(mix, dict) or not mix:
        raise TypeError(f"mix must be a non-empty dict such as {{'web': 0.6, 'code': ('repeat', 2)}}, got {mix!r}")
    for name in mix:
        if not isinstance(name, str) or not name or ":" in name or "," in name:
            raise ValueError(f"mix names served datasets (no ':' or ','), got {name!r}")
    query = {"mix": ",".join(f"{name}:{_weight_text(name, weight)}" for name, weight in mix.items())}
    if epoch_size is not None:
        if int(epoch_size) <= 0:
            raise ValueError(f"epoch_size must be positive, got {epoch_size}")
        query["epoch_size"] = int(epoch_size)
    return query


def mixture_name(mix: dict) -> str:
    """A mixture cursor's `dataset`: `mix:` and the sources' names (`mix:web,code`)."""
    return "mix:" + ",".join(mix)


def plan_query(
    batch_size: int,
    epoch: int = 0,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    group: str = "default",
    split: Optional[str] = None,
    tail: str = "drop",
    shuffle: bool = True,
    pack: Optional[dict] = None,
    mix: Optional[dict] = None,
    epoch_size: Optional[int] = None,
) -> dict:
    """The query parameters of a plan (serve-protocol.md §1), packed by `pack`
    (`pack_query`) or drawn from the mixture `mix` (`mix_query`) when given."""
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {TAILS}, got {tail!r}")
    query = {
        "batch_size": int(batch_size),
        "seed": int(seed),
        "epoch": int(epoch),
        "world": int(world),
        "rank": int(rank),
        "tail": tail,
        "shuffle": "true" if shuffle else "false",
        "group": group,
    }
    if split is not None:
        query["split"] = split
    query.update(pack_query(pack))
    query.update(mix_query(mix, epoch_size))
    return query


def add_mode(query: dict, mode: str, replica: int, replicas: int) -> None:
    """Adds a stream mode other than partition to a plan query; replicate names the member."""
    if mode == "partition":
        return
    query["mode"] = mode
    if mode == "replicate":
        if not 0 <= replica < replicas:
            raise ValueError(f"replica must be in 0…{replicas - 1}, got {replica}")
        query.update(replica=int(replica), replicas=int(replicas))
