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


@contextlib.contextmanager
def atomic_directory(out: str, overwrite: bool = False):
    """Yields a temporary directory that becomes ``out`` only if the block succeeds."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=parent)
    try:
        yield tmp
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def save_params(path: str, model: nnx.Module) -> None:
    """Writes the model's parameters and batch statistics with orbax (blocking)."""
    state = nnx.to_pure_dict(nnx.state(model))
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(os.path.abspath(path), state)
        ckpt.wait_until_finished()


def restore_params(path: str, model: nnx.Module) -> nnx.Module:
    """Fills an (abstract) model with the parameters saved at ``path``."""
    graphdef, state = nnx.split(model)
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), nnx.to_pure_dict(state))
    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(os.path.abspath(path), target)
    nnx.replace_by_pure_dict(state, restored)
    return nnx.merge(graphdef, state)


def save_converted(out: str, spec: ClapSpec | ClassifierSpec, model: nnx.Module, tokenizer_src: str | None,
                   overwrite: bool = False) -> None:
    """Writes a converted directory atomically."""
    from clap_jax.tokenizer import copy_tokenizer_files
    with atomic_directory(out, overwrite) as tmp:
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
