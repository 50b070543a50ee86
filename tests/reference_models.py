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


_roberta_tokenizer_from_dir = transformers.RobertaTokenizer.from_pretrained   # the real ones, for local dirs
_bert_tokenizer_from_dir = transformers.BertTokenizer.from_pretrained


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


# ---------------------------------------------------------------------------------------------
# Microsoft CLAP (msclap 1.3.4): ``msclap.models.clap.CLAP`` built directly (``CLAPWrapper`` would
# download weights), with ``AutoModel.from_pretrained`` building bert-base-uncased / gpt2 shapes
# (BertConfig() / GPT2Config() defaults) with random weights and ``text_layers`` layers.
# ---------------------------------------------------------------------------------------------
MSCLAP_ARGS = {
    # msclap/configs/config_{2022,2023}.yml, as CLAPWrapper.load_clap passes them to CLAP.
    "2022": dict(audioenc_name="Cnn14", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64, fmin=50,
                 fmax=14000, classes_num=527, out_emb=2048, text_model="bert-base-uncased",
                 transformer_embed_dim=768, d_proj=1024),
    "2023": dict(audioenc_name="HTSAT", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64, fmin=50,
                 fmax=8000, classes_num=527, out_emb=768, text_model="gpt2", transformer_embed_dim=768,
                 d_proj=1024),
}
_text_layers: dict = {"n": 12}


def _auto_model(name, *a, **k):
    if "gpt" in name:
        return transformers.GPT2Model(transformers.GPT2Config(n_layer=_text_layers["n"]))
    return transformers.BertModel(transformers.BertConfig(num_hidden_layers=_text_layers["n"]))


def randomize_batchnorm(model, seed: int) -> None:
    """Random BatchNorm statistics and affine parameters (init is mean 0, var 1, identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 2 + 0.5)
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def msclap_model(version: str, text_layers: int = 12, seed: int = 0):
    """A ``msclap.models.clap.CLAP`` (2022: Cnn14 + BERT; 2023: HTSAT + GPT-2) with random weights, eval mode."""
    transformers.AutoModel.from_pretrained = staticmethod(_auto_model)
    from msclap.models.clap import CLAP
    _text_layers["n"] = text_layers
    torch.manual_seed(seed)
    model = CLAP(**MSCLAP_ARGS[version]).eval()
    with torch.no_grad():      # logit_scale is ln(1/0.07) at init; move it so the scale is exercised
        model.logit_scale.fill_(3.1)
    randomize_batchnorm(model, seed + 1)
    return model


def msclap_tokenizer(version: str, directory: str):
    """transformers' tokenizer from a local directory as ``CLAPWrapper.load_clap`` sets it up
    (bert-base-uncased; gpt2 with ``add_special_tokens({'pad_token': '!'})``)."""
    if version == "2022":
        return _bert_tokenizer_from_dir(directory)
    tok = transformers.GPT2Tokenizer.from_pretrained(directory)
    tok.add_special_tokens({"pad_token": "!"})
    return tok


class _EncodePlus:
    """transformers 5 dropped ``encode_plus``, which msclap calls; for one text it is ``__call__``."""

    def __init__(self, tok):
        self.tok = tok

    def encode_plus(self, **kw):
        return self.tok(**kw)

    def __getattr__(self, name):
        return getattr(self.tok, name)


def msclap_wrapper(model, tok, version: str):
    """msclap's ``CLAPWrapper`` without its ``__init__`` (which downloads weights): the packaged
    config_{version}.yml, a random-weight ``CLAP`` and a local tokenizer, so its own methods
    (``get_audio_embeddings``, ``get_text_embeddings``, ``compute_similarity``) are the reference.
    ``read_audio`` serves float32 arrays from ``wrapper.clips`` (44.1 kHz) instead of files."""
    import re
    from pathlib import Path
    from msclap import CLAPWrapper as wrapper_module
    cls = wrapper_module.CLAPWrapper
    w = cls.__new__(cls)
    w.np_str_obj_array_pattern = re.compile(r"[SaUO]")
    w.default_collate_err_msg_format = "default_collate: {}"
    config = (Path(wrapper_module.__file__).parent / f"configs/config_{version}.yml").read_text()
    w.args = w.read_config_as_args(config, is_config_str=True)
    w.use_cuda, w.clap, w.tokenizer = False, model, _EncodePlus(tok)
    w.token_keys = (["input_ids", "token_type_ids", "attention_mask"] if version == "2022"
                    else ["input_ids", "attention_mask"])
    w.clips = {}
    w.read_audio = lambda key, resample=True: (torch.from_numpy(w.clips[key])[None], w.args.sampling_rate)
    return w


# ---------------------------------------------------------------------------------------------
# CNN14 references: PANNs (``panns_inference.models.Cnn14``) and SpeechBrain
# (``speechbrain.lobes.models.Cnn14.Cnn14`` + ``torch.nn.Linear`` classifier, the L-MAC recipe).
# ``panns_inference/__init__`` downloads AudioSet labels with wget at import time; we import its
# ``models`` module through a package stand-in that skips ``__init__``.
# ---------------------------------------------------------------------------------------------
def panns_models():
    if "panns_inference.models" not in sys.modules:
        import importlib.util
        spec = importlib.util.find_spec("panns_inference")
        if "panns_inference" not in sys.modules:
            _module("panns_inference").__path__ = list(spec.submodule_search_locations)
    import panns_inference.models
    return panns_inference.models


def panns_cnn14(seed: int = 0, sample_rate=32000, window_size=1024, hop_size=320, fmax=14000, classes_num=527):
    """PANNs ``Cnn14`` (32 kHz AudioSet tagging shapes by default) with random weights, eval mode."""
    models = panns_models()
    torch.manual_seed(seed)
    model = models.Cnn14(sample_rate=sample_rate, window_size=window_size, hop_size=hop_size, mel_bins=64,
                         fmin=50, fmax=fmax, classes_num=classes_num).eval()
    randomize_batchnorm(model, seed + 1)
    return model


def speechbrain_cnn14(seed: int = 0, n_mels: int = 80, classes: int = 50):
    """The L-MAC recipe's classifier: SpeechBrain ``Cnn14(mel_bins=80, emb_dim=2048, return_reps=True)``
    and ``torch.nn.Linear(2048, 50)``, random weights, eval mode."""
    from speechbrain.lobes.models.Cnn14 import Cnn14
    torch.manual_seed(seed)
    embedding = Cnn14(mel_bins=n_mels, emb_dim=2048, return_reps=True).eval()
    classifier = torch.nn.Linear(2048, classes).eval()
    randomize_batchnorm(embedding, seed + 1)
    return embedding, classifier
