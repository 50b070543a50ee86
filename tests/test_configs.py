"""Configs: every configs/*.py builds its dataclasses through clap_jax.configs.from_config (unknown
keys refused, lists made tuples), and --config finds the shipped files by name from any directory."""
import dataclasses
import importlib
import os
import subprocess
import sys
import tomllib
import types

import ml_collections
import pytest
import setuptools

from clap_jax import checkpoint
from clap_jax.configs import from_config
from clap_jax.frontend import SpectrogramConfig
from clap_jax.models.clap import ClapConfig
from clap_jax.models.cnn14 import Cnn14Config
from clap_jax.models.htsat import HTSATConfig
from clap_jax.spec import ClapSpec
from lmac import explainer as explainer_lib
from lmac.text_decoders import ZsDecoderConfig
from train import cli, loop

ROOT = os.path.join(os.path.dirname(__file__), "..")
CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py") and f != "__init__.py")


def _bundled_clap(name="soundscapes-small"):
    """Stands in for a loaded CLAP where only ``.spec`` is read (``train.lmac_zs.decoder_config``)."""
    directory = os.path.join(explainer_lib.BUNDLED_DIR, name)
    return types.SimpleNamespace(spec=checkpoint.read_spec(directory))


def _cnn14_clap():
    return types.SimpleNamespace(spec=ClapSpec(model=ClapConfig(audio=Cnn14Config(channels=(4, 4, 4, 8, 16, 32)),
                                                                joint_dim=24)))


def _clap(cfg):
    from train import clap
    return [clap.build_spec(cfg, cfg.tokenizer.vocab_size)]


def _classifier(cfg):
    from train import classifier
    return [classifier.build_spec(cfg)]


def _lmac(cfg):
    from train import lmac
    return [lmac.loss_config(cfg)]


def _lmac_zs(clap):
    def build(cfg):
        from train import lmac_zs
        return [lmac_zs.loss_config(cfg.loss), lmac_zs.decoder_config(cfg, clap())]
    return build


# What each config file builds; a new config file needs its row here.
BUILDS = {"clap_soundscapes": _clap, "clap_soundscapes_cnn14": _clap, "clap_soundscapes_finetune": _clap,
          "classifier_soundscapes": _classifier, "concept_head": lambda cfg: [], "lmac_cnn14_esc50": _lmac,
          "lmac_soundscapes": _lmac, "lmac_zs_msclap2022": _lmac_zs(_cnn14_clap),
          "lmac_zs_soundscapes": _lmac_zs(_bundled_clap),
          "lmac_zs_soundscapes_cnn14": _lmac_zs(lambda: _bundled_clap("soundscapes-small-cnn14")),
          "lmac_zs_soundscapes_prompt": _lmac_zs(_bundled_clap),
          "lmac_zs_soundscapes_rejected": _lmac_zs(_bundled_clap),
          "lmac_zs_soundscapes_twins": _lmac_zs(_bundled_clap),
          "lmac_zs_soundscapes_own": _lmac_zs(_bundled_clap)}


def test_every_config_file_has_a_row():
    assert sorted(BUILDS) == CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_builds_its_dataclasses(name):
    cfg = importlib.import_module(f"configs.{name}").get_config()
    built = BUILDS[name](cfg)
    assert all(dataclasses.is_dataclass(b) for b in built)
    for b in built:
        hash(b)        # frozen and made of tuples: usable as a static jit argument
    loop.make_optimizer(cfg)


def test_an_unknown_key_is_refused_by_name():
    from train import clap
    cfg = importlib.import_module("configs.clap_soundscapes").get_config()
    with cfg.unlocked():
        cfg.model.audio.embed_dimm = 16
    with pytest.raises(ValueError, match=r"^config\.model\.audio: unknown fields \['embed_dimm'\] \(HTSATConfig has: "):
        clap.build_spec(cfg, 100)
    with pytest.raises(ValueError, match=r"config.decoder.conditioning: unknown fields \['level'\]"):
        from_config(ZsDecoderConfig, {"decoder": {}, "conditioning": {"level": (0,)}}, "config.decoder")


def test_missing_required_and_derived_twice_are_refused():
    with pytest.raises(ValueError, match=r"^config.decoder: missing required fields \['decoder'\]"):
        from_config(ZsDecoderConfig, {}, "config.decoder")
    with pytest.raises(ValueError, match=r"config.frontend: \['win_length'\] are set by the code"):
        from_config(SpectrogramConfig, {"win_length": 400}, "config.frontend", win_length=512)


def test_lists_become_tuples_and_sections_nested_dataclasses():
    section = ml_collections.ConfigDict(dict(audio=dict(depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 8]), joint_dim=32))
    model = from_config(ClapConfig, section, "config.model", audio={"n_mels": 32})
    assert isinstance(model.audio, HTSATConfig)             # first member of HTSATConfig | Cnn14Config
    assert model.audio.depths == (1, 1, 2, 1) and model.audio.num_heads == (2, 4, 8, 8)
    assert model.audio.n_mels == 32 and model.joint_dim == 32
    cnn = from_config(ClapConfig, {"audio": {"kind": "cnn14", "channels": [4, 8, 8, 8, 8, 8]}})
    assert isinstance(cnn.audio, Cnn14Config) and cnn.audio.channels == (4, 8, 8, 8, 8, 8)
    with pytest.raises(ValueError, match="config.model.audio: unknown kind 'wav2vec'"):
        from_config(ClapConfig, {"audio": {"kind": "wav2vec"}}, "config.model")


def test_config_names_resolve_to_the_shipped_files(tmp_path, monkeypatch):
    shipped = os.path.join(ROOT, "configs", "lmac_soundscapes.py")
    assert cli.config_path(shipped) == shipped                       # an existing file is itself
    monkeypatch.chdir(tmp_path)
    for name in ("lmac_soundscapes", "lmac_soundscapes.py", "configs/lmac_soundscapes.py"):
        assert os.path.samefile(cli.config_path(name), shipped)
    with pytest.raises(ValueError, match=r"nope: no such config file.*clap_soundscapes, "):
        cli.config_path("nope")
    with pytest.raises(ValueError, match=r"the shipped one: --config=concept_head"):
        cli.config_path("/elsewhere/concept_head.py")


@pytest.mark.parametrize("value", ["clap_soundscapes", "configs/clap_soundscapes.py"])
def test_config_flag_takes_a_name_from_another_directory(tmp_path, value):
    code = ("from absl import app, flags\nfrom train import cli\ncli.define_config_flag('test')\n"
            "app.run(lambda argv: print(flags.FLAGS.config.steps, flags.FLAGS.config.model.audio.embed_dim))")
    out = subprocess.run([sys.executable, "-c", code, f"--config={value}", "--config.steps=7"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7", "32"]


def test_configs_is_an_installed_package():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "configs" in setuptools.find_packages(ROOT, include=include)
