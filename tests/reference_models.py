"""Builds the reference implementations offline, with random weights (recipe: clap_models.md §6-7).

``laion_clap`` downloads tokenizers and roberta-base at import time and imports torchvision and
torchaudio, whose PyPI wheels do not load beside the local CPU torch. We therefore (1) make the
``from_pretrained`` calls build randomly initialised models from a config instead of the hub,
and (2) register stand-in ``torchvision``/``torchaudio`` modules holding only the names the
reference imports. The stand-ins are never called on the paths we test: fusion mels are made
by ``transformers``' ``ClapFeatureExtractor`` (reference code) instead of LAION's torchaudio path.
"""
from __future__ import annotations

import importlib.machinery
import os
import sys
import types

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

# Touch the tokenizer classes before any stand-in exists (transformers probes torchvision).
_TOKENIZERS = (transformers.BertTokenizer, transformers.RobertaTokenizer, transformers.BartTokenizer)

ROBERTA_BASE = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2)
_roberta_overrides: dict = {}


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    mod.__path__ = []
    for k, v in attrs.items():
        setattr(mod, k, v)
    sys.modules[name] = mod
    return mod


class _Unavailable:
    """Stand-in for a torchvision/torchaudio class that the tested paths never call."""

    def __init__(self, *a, **k):
        raise RuntimeError(f"{type(self).__name__} is a test stand-in; this code path needs the real package")


def _install_stand_ins() -> None:
    if "torchvision" not in sys.modules or not hasattr(sys.modules["torchvision"], "__version__"):
        names = ["Normalize", "Compose", "RandomResizedCrop", "ToTensor", "Resize", "CenterCrop"]
        tr = _module("torchvision.transforms", **{n: type(n, (_Unavailable,), {}) for n in names},
                     InterpolationMode=types.SimpleNamespace(BICUBIC="bicubic", BILINEAR="bilinear"))
        misc = _module("torchvision.ops.misc", FrozenBatchNorm2d=type("FrozenBatchNorm2d", (_Unavailable,), {}))
        ops = _module("torchvision.ops", misc=misc)
        ds = _module("torchvision.datasets")
        _module("torchvision", transforms=tr, ops=ops, datasets=ds, __version__="stand-in")
    try:
        import torchaudio  # noqa: F401
    except Exception:
        for n in [k for k in sys.modules if k.startswith("torchaudio")]:
            del sys.modules[n]
        tf = _module("torchaudio.transforms", MelSpectrogram=type("MelSpectrogram", (_Unavailable,), {}),
                     AmplitudeToDB=type("AmplitudeToDB", (_Unavailable,), {}),
                     Resample=type("Resample", (_Unavailable,), {}))
        _module("torchaudio", transforms=tf, load=_Unavailable, __version__="stand-in")


_roberta_tokenizer_from_dir = transformers.RobertaTokenizer.from_pretrained   # the real one, for local dirs


def roberta_tokenizer(directory: str):
    """transformers' RobertaTokenizer from a local directory, as a LAION ``tokenizer=`` callable
    (padding to max_length=77 with truncation, as LAION's hook does)."""
    tok = _roberta_tokenizer_from_dir(directory)
    return lambda texts: {k: v for k, v in tok(texts, padding="max_length", truncation=True, max_length=77,
                                               return_tensors="pt").items() if k in ("input_ids", "attention_mask")}


def _patch_hub() -> None:
    for cls in _TOKENIZERS:
        cls.from_pretrained = classmethod(lambda *a, **k: None)
    transformers.RobertaModel.from_pretrained = classmethod(
        lambda cls, *a, **k: cls(transformers.RobertaConfig(**{**ROBERTA_BASE, **_roberta_overrides})))


_install_stand_ins()
_patch_hub()


def laion_module(amodel: str = "HTSAT-tiny", fusion: bool = False, text_layers: int = 12, seed: int = 0):
    """A ``laion_clap.CLAP_Module`` with random weights (eval mode)."""
    import laion_clap
    _roberta_overrides["num_hidden_layers"] = text_layers
    torch.manual_seed(seed)
    module = laion_clap.CLAP_Module(enable_fusion=fusion, amodel=amodel, tmodel="roberta", device="cpu")
    module.model.eval()
    # Random BatchNorm statistics, so bn0 and the fusion BNs are exercised (init is mean 0, var 1).
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in module.model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 20 + 5)
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
    return module
