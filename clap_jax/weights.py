"""PyTorch state dicts -> Flax NNX models, by name, with every mismatch reported.

Each of our parameters has one PyTorch name: its module path, renamed by a source's rule table
(regex substitutions, applied in order), plus the PyTorch leaf name of its layer type. Layouts
are converted on the way (Linear (out, in) -> kernel (in, out), except GPT-2's ``Conv1D``, already
(in, out); Conv2d OIHW -> HWIO). A state dict that does not fit is refused with the missing and
unexpected keys listed. :func:`state_of` goes the other way (a model -> a state dict in a
source's names and layouts, for ``clap_jax.export``).
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from typing import Callable, Iterable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

UNSAFE_FLAG = "--allow_unsafe_pickle"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: empty, truncated, not a checkpoint, not a state dict."""


def _listing(keys: list[str], limit: int = 20) -> str:
    return ", ".join(keys[:limit]) + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


class CheckpointMismatch(ValueError):
    """The checkpoint does not fit the architecture (one line; the full lists in the attributes)."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str], shapes: list[str] = ()):
        self.source, self.missing, self.unexpected, self.shapes = source, missing, unexpected, list(shapes)
        parts = [f"{source}: checkpoint does not match the architecture."]
        if missing:
            parts.append(f"Missing keys ({len(missing)}): " + _listing(missing) + ".")
        if unexpected:
            parts.append(f"Unexpected keys ({len(unexpected)}): " + _listing(unexpected) + ".")
        if shapes:
            parts.append("Shape mismatches: " + "; ".join(self.shapes[:20]) + ".")
        super().__init__(" ".join(parts))

    def naming(self, path: str) -> "CheckpointMismatch":
        """The same mismatch with the file named (when the message does not name it yet)."""
        if path in self.source:
            return self
        return CheckpointMismatch(f"{path} ({self.source})", self.missing, self.unexpected, self.shapes)


_TRUNCATED = "truncated download?"


def _sniff(path: str) -> str:
    """The container of a checkpoint file: "zip" (torch.save), "pickle" (legacy torch.save) or
    "safetensors"; :class:`CheckpointError` for an empty, truncated or foreign file."""
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes): {_TRUNCATED}")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile as err:
            raise CheckpointError(f"{path}: zip archive cut short at {size} bytes ({err}): {_TRUNCATED}") from err
        if not any(n.endswith("data.pkl") for n in names):
            raise CheckpointError(f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl; holds "
                                  f"{', '.join(names[:5])})")
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if path.endswith(".safetensors") or (size >= 8 and head[8:9] == b"{"):
        return "safetensors"
    raise CheckpointError(f"{path}: not a PyTorch checkpoint (starts with {head[:8]!r}; expected a torch.save zip "
                          "archive, a pickle or a .safetensors file)")


def _torch_load(path: str, allow_unsafe_pickle: bool):
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"{path}: reading PyTorch pickles needs torch (pip install 'clap-jax[convert]')") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "weights only" not in str(err).lower():
            raise CheckpointError(f"{path}: corrupt pickle ({first}): {_TRUNCATED}") from err
        raise ValueError(
            f"{path}: this checkpoint cannot be read safely (weights_only=True failed: {first}). "
            f"If you trust the file, rerun with {UNSAFE_FLAG}, which unpickles it fully and can execute "
            f"code stored in it.") from err
    except (EOFError, RuntimeError, OSError, KeyError, IndexError, ValueError, TypeError) as err:
        first = (str(err).splitlines() or [""])[0][:200] or type(err).__name__
        raise CheckpointError(f"{path}: cannot read the checkpoint ({first}): corrupt or {_TRUNCATED}") from err


def _is_tensor(value) -> bool:
    return hasattr(value, "detach") or isinstance(value, (np.ndarray, np.generic))


def read_state_dict(path: str, allow_unsafe_pickle: bool = False, entry: str | None = None) -> dict[str, np.ndarray]:
    """The state dict of a checkpoint file: :func:`read_checkpoint` without the other entries."""
    return read_checkpoint(path, allow_unsafe_pickle, entry)[0]


def read_checkpoint(path: str, allow_unsafe_pickle: bool = False,
                    entry: str | None = None) -> tuple[dict[str, np.ndarray], Mapping]:
    """(state dict, the file's top-level entries). Reads a PyTorch checkpoint (.pt/.pth/.bin/.ckpt) or safetensors file into numpy float arrays.

    Pickles are read with ``torch.load(weights_only=True)``, which cannot run code. Files that
    need full unpickling (the published LAION ``.pt`` files, for example) are refused unless
    ``allow_unsafe_pickle``: full unpickling executes whatever code the file contains.
    ``entry`` selects a sub-dict (``state_dict``, ``model``); by default ``state_dict`` is used if
    present. A DDP ``module.`` prefix is stripped. A file that is empty, truncated, not a
    checkpoint or not a dict of tensors raises :class:`CheckpointError` naming it and what is wrong.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: a folder, not a checkpoint file")
    if _sniff(path) == "safetensors":
        from safetensors.numpy import load_file
        try:
            raw = load_file(path)
        except Exception as err:                              # safetensors raises its own error type
            raise CheckpointError(f"{path}: cannot read safetensors ({err}): corrupt or {_TRUNCATED}") from err
    else:
        raw = _torch_load(path, allow_unsafe_pickle)
    if not isinstance(raw, Mapping):
        shape = f" of shape {tuple(raw.shape)}" if hasattr(raw, "shape") else ""
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}{shape}, not a state dict (a dict of named "
                              "tensors, as torch.save(model.state_dict()) writes)")
    top = ", ".join(map(str, sorted(raw, key=str)[:10]))
    entries = raw
    if entry is not None:
        if entry not in raw:
            raise CheckpointError(f"{path}: no '{entry}' entry (top-level keys: {top})")
        raw = raw[entry]
    elif "state_dict" in raw:
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: '{entry or 'state_dict'}' holds a {type(raw).__name__}, not a state dict")
    if raw and not any(_is_tensor(v) for v in raw.values()):
        raise CheckpointError(f"{path}: no tensors at the top level and no '{entry or 'state_dict'}' entry "
                              f"(top-level keys: {top})")
    out = {}
    for key, value in raw.items():
        if not _is_tensor(value):
            raise CheckpointError(f"{path}: '{key}' holds a {type(value).__name__}, not a tensor")
        if key.startswith("module."):
            key = key[len("module."):]
        if hasattr(value, "detach"):
            value = value.detach().float().numpy() if value.is_floating_point() else value.numpy()
        out[key] = np.asarray(value)
    if not out:
        raise CheckpointError(f"{path}: an empty state dict")
    return out, entries


def _leaves(module: nnx.Module) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """Our variable name -> (PyTorch leaf name, torch-to-ours layout transform) for one layer type."""
    same = lambda a: a
    if isinstance(module, nnx.Linear):
        # A Linear may declare that its PyTorch weight is stored (in, out) already, as GPT-2's
        # ``Conv1D`` does (``clap_jax.models.gpt2.Conv1D``); nn.Linear stores (out, in).
        in_out = getattr(module, "torch_weight_layout", "out_in") == "in_out"
        return {"kernel": ("weight", same if in_out else lambda a: a.T), "bias": ("bias", same)}
    if getattr(module, "torch_layout", None) == "conv_transpose":
        # A transposed convolution that declares PyTorch's ConvTranspose2d layout (lmac.decoders):
        # (in, out, kh, kw) -> (kh, kw, in, out), unflipped.
        return {"kernel": ("weight", lambda a: a.transpose(2, 3, 0, 1)), "bias": ("bias", same)}
    if isinstance(module, nnx.Conv):
        return {"kernel": ("weight", lambda a: a.transpose(2, 3, 1, 0)), "bias": ("bias", same)}
    if isinstance(module, nnx.LayerNorm):
        return {"scale": ("weight", same), "bias": ("bias", same)}
    if isinstance(module, nnx.Embed):
        return {"embedding": ("weight", same)}
    if isinstance(module, nnx.BatchNorm):
        return {"scale": ("weight", same), "bias": ("bias", same), "mean": ("running_mean", same),
                "var": ("running_var", same)}
    return {}


def torch_names(model: nnx.Module, rules: Iterable[tuple[str, str]]) -> dict[str, tuple[nnx.Variable, Callable]]:
    """PyTorch key -> (our variable, layout transform) for every parameter and statistic of ``model``."""
    rules = [(re.compile(p), r) for p, r in rules]

    def rename(path: str) -> str:
        for pattern, repl in rules:
            path = pattern.sub(repl, path)
        return path

    table = {}
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Module):
            continue
        prefix = ".".join(map(str, path))
        leaves = _leaves(node)
        for name, value in vars(node).items():
            if not isinstance(value, nnx.Variable):
                continue
            torch_leaf, fn = leaves.get(name, (name, lambda a: a))
            table[rename(f"{prefix}.{torch_leaf}" if prefix else torch_leaf)] = (value, fn)
    return table


def _axes_of(fn: Callable[[np.ndarray], np.ndarray], ndim: int) -> tuple[int, ...]:
    """The axis permutation a layout transform applies: ``fn(x).shape == x.shape[axes]``
    (every transform of :func:`_leaves` is an axis permutation; probed on distinct axis sizes)."""
    sizes = (2, 3, 5, 7, 11)[:ndim]
    return tuple(sizes.index(n) for n in fn(np.empty(sizes, np.int8)).shape)


def state_of(model: nnx.Module, rules: Iterable[tuple[str, str]]) -> dict[str, np.ndarray]:
    """``model``'s parameters and statistics as a PyTorch state dict (float32 numpy arrays in
    PyTorch's layouts, keys renamed by ``rules``): the inverse of :func:`load_state`, so
    ``load_state(model, state_of(model, rules), rules)`` changes nothing."""
    out = {}
    for key, (var, fn) in torch_names(model, rules).items():
        value = np.asarray(var.get_value(), np.float32)
        if value.ndim > 1:
            value = value.transpose(np.argsort(_axes_of(fn, value.ndim)))
        out[key] = np.array(value, order="C")          # (ascontiguousarray would make scalars 1-d)
    return out


def load_state(model: nnx.Module, state: Mapping[str, np.ndarray], rules: Iterable[tuple[str, str]],
               ignore: Iterable[str] = (), source: str = "checkpoint") -> None:
    """Copies ``state`` into ``model`` in place, or raises :class:`CheckpointMismatch`.

    ``ignore`` are regexes for keys the architecture does not use (frozen front-end tensors,
    training-only heads, buffers we recompute).
    """
    table = torch_names(model, rules)
    ignore = [re.compile(p) for p in ignore]
    missing = sorted(k for k in table if k not in state)
    unexpected = sorted(k for k in state if k not in table and not any(p.search(k) for p in ignore))
    shapes = []
    converted = {}
    for key, (var, fn) in table.items():
        if key in state:
            value = fn(np.asarray(state[key]))
            if tuple(value.shape) != tuple(var.shape):
                shapes.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(var.shape)}")
            converted[key] = value
    if missing or unexpected or shapes:
        raise CheckpointMismatch(source, missing, unexpected, shapes)
    for key, (var, _) in table.items():
        var.set_value(jnp.asarray(converted[key], dtype=var.dtype))
