"""One policy for command-line errors and bad inputs, shared by every ``python -m`` command.

* A user mistake (a missing file, a bad flag value, an unwritable ``--out``) is one line on
  standard error, ``<command>: error: <what and where>``, found before any work where it can be;
  the traceback is printed only with ``--verbosity=1`` (absl debug) or higher.
* A command that reads many inputs skips a bad one: one line ``<command>: skipped <input>:
  <reason>`` on standard error, counted in the final summary line; ``--strict`` turns the first
  skip into a stop (an error as above). Results for the good inputs are written as they come.
* Python warnings (near-silent clips) are one line each, ``<command>: warning: ...``; solver
  non-convergence is a logged WARNING (logger ``sparse``).

Exit status of every command:

======  ==========================================================================================
0       every input gave a result
1       nothing was produced: a user error (one line, as above) or every input was skipped
3       some inputs were skipped (each named on standard error); the others have their results
======  ==========================================================================================
"""
from __future__ import annotations

import functools
import os
import sys
import traceback
import warnings

OK, FAILED, PARTIAL = 0, 1, 3


class InputError(ValueError):
    """A bad input under ``--strict``, or a bad flag value."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (KeyError without its quotes; the type for the unexpected)."""
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    msg = " ".join(str(msg).splitlines()).strip() or type(err).__name__
    if not isinstance(err, (OSError, ValueError, KeyError, ImportError)):
        msg = f"{type(err).__name__}: {msg}"
    return msg


def _verbose() -> bool:
    try:
        from absl import logging
        return logging.get_verbosity() >= 1
    except Exception:                                     # absl not initialised: be quiet
        return False


def _show_warning(prog):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {' '.join(str(message).splitlines())}", file=file or sys.stderr, flush=True)
    return show


def guard(prog: str):
    """Decorates an absl ``main(argv)``: exceptions become one line on stderr and exit status 1
    (with the traceback under ``--verbosity=1``); warnings print as one line each."""
    def wrap(main):
        @functools.wraps(main)
        def run(argv):
            warnings.showwarning = _show_warning(prog)
            try:
                return main(argv)
            except Exception as err:                     # noqa: BLE001: every error becomes one line
                if _verbose():
                    traceback.print_exc()
                print(f"{prog}: error: {one_line(err)}", file=sys.stderr, flush=True)
                return FAILED
        return run
    return wrap


def split_paths(values) -> list[str]:
    """Flag values -> paths: a value that names an existing file or folder is taken whole (so a
    name with a comma works); others are split at commas. ``--audio`` may also be repeated."""
    if isinstance(values, str):
        values = [values]
    out = []
    for value in values or ():
        if os.path.exists(value):
            out.append(value)
        else:
            out += [p.strip() for p in value.split(",") if p.strip()]
    return out


def audio_paths(entries) -> list[str]:
    """Audio files from flag values naming files and folders (:func:`split_paths`; folders: every
    audio file below, sorted); a missing entry or no audio file at all raises FileNotFoundError."""
    from clap_jax.data import readers
    paths = []
    for entry in split_paths(entries):
        if os.path.isdir(entry):
            paths += [r.path for r in readers.AudioFolder(entry)]
        elif os.path.exists(entry):
            paths.append(entry)
        else:
            raise FileNotFoundError(f"{entry}: no such audio file or folder")
    if not paths:
        raise FileNotFoundError(f"no audio files in {', '.join(map(str, entries))}")
    return paths


def define_input_flags(default_audio: list[str], noun: str = "file") -> None:
    """The flags of a command that reads audio files under this policy: ``--audio`` (files and
    folders, for :func:`audio_paths`) and ``--strict``."""
    from absl import flags
    flags.DEFINE_multi_string("audio", list(default_audio), "Audio files and/or folders (searched recursively): "
                              "comma-separated or the flag repeated (a value naming an existing file is taken whole).")
    flags.DEFINE_boolean("strict", False, f"Stop at the first bad {noun} instead of skipping it.")


def check_output_file(path: str | None, flag: str = "--out") -> None:
    """Refuses, before any work, an output file that cannot be written: a directory, a missing
    parent folder, an unwritable folder or file."""
    if not path:
        return
    if os.path.isdir(path):
        raise IsADirectoryError(f"{flag}={path}: is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{flag}={path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise PermissionError(f"{flag}={path}: not writable")


def reason(name: str, why) -> str:
    """Why ``name`` was skipped, on one line, without the ``name: `` its error may start with."""
    text = one_line(why) if isinstance(why, BaseException) else str(why)
    return text[len(name) + 2:] if text.startswith(f"{name}: ") else text


class Skips:
    """Bad inputs of one command: each named on stderr with its reason as it is skipped (or,
    with ``strict``, raised as :class:`InputError`), counted in :meth:`summary`. An input skipped
    again (a command that passes over its inputs more than once) is named and counted once."""

    def __init__(self, prog: str, strict: bool = False, stream=None):
        self.prog, self.strict, self.stream = prog, strict, stream
        self.items: list[tuple[str, str]] = []
        self._seen: set[str] = set()

    def __call__(self, name: str, why) -> None:
        text = reason(name, why)
        if self.strict:
            raise InputError(f"{name}: {text} (stopped by --strict)")
        if name in self._seen:
            return
        self._seen.add(name)
        self.items.append((name, text))
        print(f"{self.prog}: skipped {name}: {text}", file=self.stream or sys.stderr, flush=True)

    def __len__(self) -> int:
        return len(self.items)

    def reasons(self) -> dict[str, str]:
        """``{input: reason}`` of the inputs skipped so far."""
        return dict(self.items)

    def summary(self, done: int, noun: str = "inputs") -> str:
        line = f"{self.prog}: {done} of {done + len(self)} {noun} done"
        if self.items:
            line += f", {len(self)} skipped ({', '.join(n for n, _ in self.items[:3])}" + \
                    (", ...)" if len(self) > 3 else ")")
        return line

    def exit_code(self, done: int) -> int:
        """0 when nothing was skipped, 1 when nothing was done, 3 when some were skipped."""
        if not self.items:
            return OK
        return FAILED if done == 0 else PARTIAL
