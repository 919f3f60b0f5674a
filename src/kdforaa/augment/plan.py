"""The per-sample plan of a batch: what the fused backends (native, Triton) run for each sample.

Worked out on the host from :class:`~kdforaa.augment.params.AugParams` and the op table, for a
``height x width`` batch: each slot's native op code and float32 argument (for its colour op), each
sample's inverse map of crop, flip and its geometric ops composed (:func:`inverse_maps`), which
samples move, and the Cutout boxes. Both fused backends take a :class:`SamplePlan`; each turns the maps
into what its kernel reads (the native kernels every row's and column's fixed-point part, the Triton
kernel a few coefficients per sample). The torch backend reads the same :func:`inverse_maps`.

A policy draws few distinct (op, level, sign) triples, so a batch's arguments and maps are mostly a
look-up (:func:`_slot_numbers`); the triples never seen are computed by the op table's own level rules
and inverse maps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from kdforaa.augment import affine
from kdforaa.augment.op_table import BY_NAME, op_argument
from kdforaa.augment.params import AugParams


@dataclass(frozen=True)
class SamplePlan:
    """What the fused backends run for each sample of a batch of ``B`` images.

    ``codes``/``arguments``: ``(B,S)`` int32 native op codes (0: no colour op) and float32 arguments;
    ``maps``: ``(B,3,3)`` float64 inverse maps (:func:`inverse_maps`), None when no sample has a
    geometric step; ``moving``: ``(B,)`` bool, the samples whose map is not the identity; ``cutout``:
    ``(B,4)`` int32 boxes (top, left, bottom, right), None without Cutout.
    """

    codes: np.ndarray
    arguments: np.ndarray
    maps: np.ndarray | None
    moving: np.ndarray
    cutout: np.ndarray | None


def sample_plan(params: AugParams, height: int, width: int) -> SamplePlan:
    """The per-sample plan of ``params`` for ``height x width`` images."""
    batch = len(params)
    arguments, slot_maps = _slot_numbers(params, height, width)
    codes, arguments = _colour_codes(params, arguments)
    maps = _inverse_maps(params, width, slot_maps)
    moving = np.zeros(batch, dtype=bool)
    if maps is not None:
        maps = np.broadcast_to(maps, (batch, 3, 3))
        moving = affine.moving_samples(maps)
    cutout = None if params.cutout is None else params.cutout.numpy().astype(np.int32)
    return SamplePlan(codes, arguments, maps, moving, cutout)


def _colour_codes(params: AugParams, arguments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(B,S)`` int32 native op codes (0 where the slot is skipped or not a colour op) and float32
    arguments (0 where the op takes none), from the slots' ``(B,S)`` arguments (:func:`_slot_numbers`):
    what the fused backends run per sample and slot."""
    facts = _op_facts(tuple(params.op_names))
    ops, applied = params.ops.numpy(), params.applied.numpy()
    codes = np.where(applied, facts.colour_codes[ops], 0).astype(np.int32)
    arguments = np.where(applied & facts.colour_arguments[ops], arguments, np.float32(0.0))
    return codes, arguments.astype(np.float32, copy=False)


@dataclass(frozen=True)
class _OpFacts:
    """Per op id of an ``op_names`` tuple: its native code if it is a colour op (else 0), whether it is
    a colour op that takes an argument, and whether it is geometric."""

    colour_codes: np.ndarray
    colour_arguments: np.ndarray
    geometric: np.ndarray


@functools.cache
def _op_facts(op_names: tuple[str, ...]) -> _OpFacts:
    specs = [BY_NAME[name] for name in op_names]
    return _OpFacts(
        np.array([spec.native_code if spec.kind == "colour" else 0 for spec in specs], dtype=np.int32),
        np.array([spec.kind == "colour" and spec.level_rule is not None for spec in specs], dtype=bool),
        np.array([spec.inverse_map is not None for spec in specs], dtype=bool),
    )


@dataclass
class _KnownSlots:
    """What the level rules and inverse maps gave at one image size for one ``op_names``: ``keys``
    ``(K,)`` int64 sorted (op id << 33 | the sign << 32 | the float32 level's bits; or ``_SKIPPED``),
    ``arguments`` ``(K,)`` float32 and ``maps`` ``(K,3,3)`` float64 (the identity for ops that are not
    geometric)."""

    keys: np.ndarray
    arguments: np.ndarray
    maps: np.ndarray


# A policy draws few distinct (op, level, sign) triples, so a batch's numbers are mostly a lookup; the
# triples never seen are computed, one op_argument (and inverse map) call per op, by the very functions
# that define them.
_KNOWN_SLOTS: dict[tuple[tuple[str, ...], int, int], _KnownSlots] = {}
_KNOWN_SLOTS_LIMIT = 1 << 16  # triples per image size; beyond, the memory starts afresh


_SKIPPED = -1  # the key of a skipped slot: argument 0, the identity map


def _nothing_known() -> _KnownSlots:
    """What is known before any batch: the skipped slot."""
    return _KnownSlots(np.array([_SKIPPED]), np.zeros(1, np.float32), np.eye(3)[None])


def _learn(known: _KnownSlots, keys: np.ndarray, names: tuple[str, ...], h: int, w: int) -> _KnownSlots:
    """``known`` and the arguments and maps of ``keys`` (unique, not in ``known``), sorted by key."""
    arguments, maps = np.zeros(len(keys), np.float32), np.tile(np.eye(3), (len(keys), 1, 1))
    op_ids = keys >> 33
    for op in np.unique(op_ids[keys != _SKIPPED]).tolist():
        chosen = op_ids == op
        level = torch.from_numpy((keys[chosen] & 0xFFFFFFFF).astype(np.uint32).view(np.float32))
        sign = torch.from_numpy(np.where((keys[chosen] >> 32) & 1, -1.0, 1.0).astype(np.float32))
        arguments[chosen] = op_argument(names[op], level, sign, height=h, width=w).numpy()
        inverse_map = BY_NAME[names[op]].inverse_map
        if inverse_map is not None:
            maps[chosen] = inverse_map(arguments[chosen].astype(np.float64), h, w)
    order = np.argsort(np.concatenate([known.keys, keys]), kind="stable")
    return _KnownSlots(
        np.concatenate([known.keys, keys])[order],
        np.concatenate([known.arguments, arguments])[order],
        np.concatenate([known.maps, maps])[order],
    )


def _slot_numbers(params: AugParams, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Every applied slot's op argument (``op_argument``; zero for skipped slots and ops without one),
    ``(B,S)`` float32, and inverse map ``(B,S,3,3)`` float64 (the identity where the slot is not
    geometric; None when no slot is): the whole batch in a few array operations."""
    names = tuple(params.op_names)
    ops, applied = params.ops.numpy(), params.applied.numpy()
    levels = params.levels.numpy().astype(np.float32)  # as op_argument reads them
    keys = (ops.astype(np.int64) << 33) | ((params.signs.numpy() < 0).astype(np.int64) << 32)
    keys = np.where(applied, keys | levels.view(np.uint32), _SKIPPED).reshape(-1)
    known = _KNOWN_SLOTS.get((names, h, w)) or _nothing_known()
    where = np.searchsorted(known.keys, keys)
    found = known.keys[np.minimum(where, len(known.keys) - 1)] == keys
    if not found.all():
        missing = np.unique(keys[~found])
        if len(known.keys) + len(missing) > _KNOWN_SLOTS_LIMIT:  # start afresh with this batch's triples
            known, missing = _nothing_known(), np.unique(keys)
        known = _KNOWN_SLOTS[(names, h, w)] = _learn(known, missing, names, h, w)
        where = np.searchsorted(known.keys, keys)
    arguments = known.arguments[where].reshape(ops.shape)
    if not (applied & _op_facts(names).geometric[ops]).any():
        return arguments, None
    return arguments, known.maps[where].reshape(*ops.shape, 3, 3)


def inverse_maps(params: AugParams, h: int, w: int) -> np.ndarray | None:
    """``(B,3,3)`` float64 inverse map of crop, flip, then each slot's geometric op; None if there are
    none (see :mod:`kdforaa.augment.affine` for the convention)."""
    return _inverse_maps(params, w, _slot_numbers(params, h, w)[1])


def _inverse_maps(params: AugParams, w: int, slot_maps: np.ndarray | None) -> np.ndarray | None:
    """:func:`inverse_maps` from the slots' ``(B,S,3,3)`` maps (:func:`_slot_numbers`)."""
    steps = []
    if params.crop is not None:
        top, left = params.crop.numpy().T
        steps.append(affine.translate_map(left, top))
    if params.flip is not None:
        steps.append(affine.flip_map(params.flip.numpy(), w))
    if slot_maps is not None:
        steps.extend(slot_maps.transpose(1, 0, 2, 3))
    return affine.compose_maps(*steps) if steps else None
