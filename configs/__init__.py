"""Training configs (ml_collections files, one ``get_config()`` each), installed with the package so
that ``--config=<name>`` finds them from any directory (``train.cli.config_path``)::

    python -m train.clap --config=clap_soundscapes --workdir=runs/clap
    python -m train.clap --config=configs/clap_soundscapes.py --workdir=runs/clap   # the same file, by path

Each section that a dataclass describes is built by ``clap_jax.configs.from_config`` (keys are its
field names; unknown keys are refused), so its keys here are exactly that dataclass's fields.
"""
