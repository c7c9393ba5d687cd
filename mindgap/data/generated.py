"""Generated sets are written whole or not at all.

Decorate a generator ``generate(out_dir, ...)`` with :func:`writes_whole_set`: it then writes into a hidden temporary
folder beside ``out_dir`` (``.NAME.tmp-PID``) and that folder is renamed to ``out_dir`` only when the generator
returns (``mindgap.storage.atomic_folder``).  A generation killed half-way leaves ``out_dir`` as it was (absent or
empty) and its temporary folder is removed by the next run, so the same command simply starts again.
"""

import argparse
import functools
import json
import os
import sys

from mindgap import storage


def refuse_non_empty(out_dir, marker):
    """A ``FileExistsError`` if ``out_dir`` holds anything: saying whether it is a finished set (``marker`` there) or
    the remains of an interrupted generation of an older version (files but no ``marker``)."""
    out_dir = os.fspath(out_dir)
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        return
    if os.path.isfile(os.path.join(out_dir, marker)):
        raise FileExistsError(f"{out_dir!r} already holds a generated set; pass a new or empty folder (nothing was written).")
    raise FileExistsError(f"{out_dir!r} is not empty and holds no {marker}: an unfinished set (a generation killed before "
                          "sets were written whole) or other files; delete it or pass a new or empty folder "
                          "(nothing was written).")


def writes_whole_set(marker):
    """Decorator for ``generate(out_dir, *args, **kwargs)`` writing a set whose finished state ``marker`` (a file name
    inside it) records: the set appears at ``out_dir`` in one rename, complete; returns ``out_dir``."""

    def decorate(generate):
        @functools.wraps(generate)
        def whole(out_dir, *args, **kwargs):
            refuse_non_empty(out_dir, marker)
            with storage.atomic_folder(out_dir, replace=False) as temporary:
                generate(temporary, *args, **kwargs)
                if not os.path.isfile(os.path.join(temporary, marker)):
                    raise RuntimeError(f"{generate.__qualname__} wrote no {marker}; the set is incomplete.")
            return os.fspath(out_dir)

        return whole

    return decorate


def known_settings(settings, defaults, what):
    """``defaults`` updated by ``settings``; a ``ValueError`` names any setting ``defaults`` lacks (``what``: the set)."""
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"Unknown {what} setting(s) {unknown}; known: {', '.join(defaults)}.")
    return {**defaults, **settings}


def settings_parser(module, doc, defaults, metavars=None, helps=None):
    """The command line of a generator ``python -m mindgap.data.<module>`` (``doc``: its docstring): ``OUT_DIR`` and one
    flag per setting of ``defaults`` (a pair MIN MAX for a tuple unless ``metavars`` names its parts, several integers
    for a None default), its help ``helps[name]`` or its default."""
    parser = argparse.ArgumentParser(prog=f"python -m mindgap.data.{module}", description=doc.splitlines()[0])
    parser.add_argument("out_dir", help="new or empty folder to write the set into")
    for name, value in defaults.items():
        flag, shown = "--" + name.replace("_", "-"), (helps or {}).get(name, f"default {value}")
        if isinstance(value, tuple):
            metavar = (metavars or {}).get(name, ("MIN", "MAX")[:len(value)])
            parser.add_argument(flag, type=int, nargs=len(value), default=value, metavar=metavar, help=shown)
        elif value is None:
            parser.add_argument(flag, type=int, nargs="+", default=None, help=shown)
        else:
            parser.add_argument(flag, type=type(value), default=value, help=shown)
    return parser


def run_generator(generate, out_dir, wrote, **settings):
    """A generator's command line: ``generate(out_dir, **settings)``, then ``wrote()`` printed; a refused folder or a
    bad setting is one line on stderr and exit code 2."""
    try:
        generate(out_dir, **settings)
    except (FileExistsError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(wrote())
    return 0


def ensure_set(out_dir, marker, same, generate, what):
    """``out_dir`` when its ``marker`` file records the settings wanted (``same(recorded)``), a ``FileExistsError`` when
    it records others, else ``generate()``: a generated set is written once and reused by every run that wants it."""
    path = os.path.join(out_dir, marker)
    if not os.path.isfile(path):
        return generate()
    with open(path) as handle:
        found = json.load(handle)
    if same(found):
        return out_dir
    raise FileExistsError(f"{out_dir!r} holds {what} made with other settings ({found}); pass another folder.")
