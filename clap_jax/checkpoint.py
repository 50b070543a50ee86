"""The converted-directory format: ``spec.json`` + orbax ``params/`` + ``tokenizer/``.

Loading needs no torch. Directories are written atomically: everything goes to a hidden
sibling first and is renamed into place at the end, so a failed or killed conversion leaves
nothing at the output path.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from clap_jax.models.clap import ClapModel
from clap_jax.models.cnn14 import Cnn14
from clap_jax.spec import ClapSpec, ClassifierSpec

SPEC_FILE, PARAMS_DIR, TOKENIZER_DIR = "spec.json", "params", "tokenizer"


def abstract_model(spec: ClapSpec, dtype=jnp.float32) -> ClapModel:
    """The model with shapes only (no memory, no random init), ready to receive weights."""
    return nnx.eval_shape(lambda: ClapModel(spec.model, dtype=dtype, rngs=nnx.Rngs(0)))


def abstract_classifier(spec: ClassifierSpec, dtype=jnp.float32) -> Cnn14:
    """The classifier with shapes only, ready to receive weights."""
    return nnx.eval_shape(lambda: Cnn14(spec.model, dtype=dtype, rngs=nnx.Rngs(0)))


def check_output_dir(out: str, overwrite: bool = False, must_contain: str | None = SPEC_FILE) -> None:
    """Refuses, before any work, an output directory that must not be written: an existing path
    without ``overwrite``; with ``overwrite``, anything but a directory holding ``must_contain``
    (``spec.json``: a converted model; None: any directory); a parent that cannot be created."""
    if not out:
        raise ValueError("no output directory given (--out)")
    out = os.path.abspath(out)
    if os.path.exists(out) or os.path.islink(out):
        if not overwrite:
            raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
        if not os.path.isdir(out) or os.path.islink(out):
            raise FileExistsError(f"{out}: exists and is not a directory; refusing to replace it")
        if must_contain and not os.path.exists(os.path.join(out, must_contain)):
            raise FileExistsError(f"{out}: exists and is not a converted model (no {must_contain}); --overwrite "
                                  "replaces only converted models: remove it yourself or choose another --out")
    parent = os.path.dirname(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{out}: cannot create it ({parent} is not a writable folder)")


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (os.umask sets it)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


@contextlib.contextmanager
def atomic_directory(out: str, overwrite: bool = False, must_contain: str | None = None):
    """Yields a temporary directory that becomes ``out`` only if the block succeeds.

    ``out`` must not exist, or with ``overwrite`` be a directory (holding ``must_contain`` when
    given, :func:`check_output_dir`). It is replaced by two renames (the old directory aside, the
    new one in), so ``out`` is always either the old or the new complete directory; the old one
    is deleted only after the new one is in place. The directory gets ordinary permissions
    (0777 minus the umask: 0755 under the usual 022), not ``mkdtemp``'s 0700.
    """
    out = os.path.abspath(out)
    check_output_dir(out, overwrite, must_contain)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=parent)
    os.chmod(tmp, 0o777 & ~_umask())
    old = None
    try:
        yield tmp
        check_output_dir(out, overwrite, must_contain)          # still true after the work?
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old.", dir=parent)
            os.replace(out, os.path.join(old, "previous"))
        try:
            os.replace(tmp, out)
        except BaseException:
            if old is not None:                                 # put the previous one back
                os.replace(os.path.join(old, "previous"), out)
            raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def save_params(path: str, model: nnx.Module) -> None:
    """Writes the model's parameters and batch statistics with orbax (blocking)."""
    state = nnx.to_pure_dict(nnx.state(model))
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(os.path.abspath(path), state)
        ckpt.wait_until_finished()
    marker = os.path.join(path, "commit_success.txt")   # orbax writes the machine's absolute path
    if os.path.exists(marker):                          # into it; a shipped directory must not carry one
        with open(marker, "w") as f:
            f.write("Checkpoint commit was successful.\n")


def restore_params(path: str, model: nnx.Module) -> nnx.Module:
    """Fills an (abstract) model with the parameters saved at ``path``, on this process's first
    local device (so every process of a multi-host job holds its own copy)."""
    graphdef, state = nnx.split(model)
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=local), nnx.to_pure_dict(state))
    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(os.path.abspath(path), target)
    nnx.replace_by_pure_dict(state, restored)
    return nnx.merge(graphdef, state)


def save_converted(out: str, spec: ClapSpec | ClassifierSpec, model: nnx.Module, tokenizer_src: str | None,
                   overwrite: bool = False) -> None:
    """Writes a converted directory atomically; ``overwrite`` replaces only a converted model
    (a directory with ``spec.json``), never another folder."""
    from clap_jax.tokenizer import copy_tokenizer_files
    with atomic_directory(out, overwrite, must_contain=SPEC_FILE) as tmp:
        with open(os.path.join(tmp, SPEC_FILE), "w") as f:
            f.write(spec.to_json())
        if tokenizer_src is not None:
            copy_tokenizer_files(tokenizer_src, os.path.join(tmp, TOKENIZER_DIR))
        save_params(os.path.join(tmp, PARAMS_DIR), model)


def read_spec(directory: str, kind: type = ClapSpec) -> ClapSpec | ClassifierSpec:
    """The spec of a converted directory; ``kind`` is ClapSpec or ClassifierSpec (a directory of
    the other kind is refused with a message naming the right loader)."""
    path = os.path.join(directory, SPEC_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory}: not a converted model directory (no {SPEC_FILE})")
    with open(path) as f:
        try:
            return kind.from_json(f.read())
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
