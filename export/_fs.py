"""Atomic model folders: everything is written into a hidden temp folder beside the target, then renamed."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from virtualfocus.edge.errors import InputError

__all__ = ["atomic_folder"]


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder that becomes ``target`` when the block succeeds, and vanishes when it fails.

    Parameters
    ----------
    target : path
        Final folder. Its parent is created if needed.
    overwrite : bool
        Replace an existing ``target`` (the old folder is removed only after the new one is in place).

    Raises
    ------
    InputError
        ``target`` exists and ``overwrite`` is false, or it is a file.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder; choose another --out")
    if target.exists() and not overwrite:
        raise InputError(f"{target}: already exists; pass overwrite=True (--overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        # mkdtemp/mkstemp create owner-only entries; a model folder is for everyone who may run it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        for f in tmp.rglob("*"):
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~umask)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
