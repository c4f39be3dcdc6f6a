"""Atomic, idempotent writes: every output appears whole or not at all.

Files are written to a temporary sibling and moved into place with ``os.replace`` (atomic
on POSIX within one filesystem). A folder of outputs is staged next to its target and
swapped in, so a run killed mid-write leaves the previous outputs intact.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ka_ml.errors import KaMlError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def full_disk(e: BaseException, path: Path) -> KaMlError | None:
    """The error to show for ``e`` when it is a full disk (or quota) while writing ``path``,
    else None: "unexpected error: OSError ..." (exit 1) named no path."""
    if not isinstance(e, OSError):
        return None
    if e.errno not in _FULL and "No space left on device" not in str(e):
        return None
    file = f" ({e.filename})" if e.filename and str(e.filename) != str(path) else ""
    return KaMlError(
        f"No space left on the disk holding '{path}'{file} while writing it; nothing of it "
        "was published.",
        "free space there (old outputs/<date>/ folders, MLflow artifacts of old runs) or "
        "write to a disk with room (paths.outputs, --out), then rerun; reruns are idempotent.",
    )


def atomic_write(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then move the temp file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are shared files
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if (full := full_disk(e, path)) is not None:
            raise full from e
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> Path:
    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    return atomic_write(path, write)


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``target`` as a whole.

    On any error the staging folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging.", dir=target.parent))
    os.chmod(stage, 0o777 & ~_umask())
    try:
        yield stage
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if (full := full_disk(e, target)) is not None:
            raise full from e
        raise
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(stage, target)
    shutil.rmtree(old, ignore_errors=True)


def recover_staged(target: Path) -> None:
    """Undo what a killed run left: restore ``target`` from ``.old`` if a swap was interrupted
    between renames, and delete its staging folders (a SIGKILL skips ``staged_dir``'s cleanup).

    Call it only while holding the target's lock, so that no live run's staging is removed.
    """
    target = Path(target)
    old = target.parent / f".{target.name}.old"
    if not target.exists() and old.exists():
        os.replace(old, target)
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{glob.escape(target.name)}.staging.*"):
            shutil.rmtree(stale, ignore_errors=True)


def ensure_writable_dir(path: Path, what: str, *, keep: bool = True) -> Path:
    """Fail before any work when an output folder cannot be created or written; ``keep``
    False: a check only, the folders it had to create are removed again (a run that then
    fails before writing leaves no empty folder behind)."""
    path = Path(path)
    made = missing_dirs(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise KaMlError(
            f"The {what} folder '{path}' is not writable ({e.strerror}).",
            "choose another folder with --out or fix its permissions.",
        ) from e
    finally:
        if not keep:
            remove_made_dirs(made)
    return path


def missing_dirs(path: Path) -> list[Path]:
    """``path`` and those of its parent folders that do not exist yet, deepest first: the
    folders creating ``path`` makes (for :func:`remove_made_dirs`)."""
    out: list[Path] = []
    here = Path(path).absolute()
    while not here.exists() and here != here.parent:
        out.append(here)
        here = here.parent
    return out


def remove_made_dirs(made: list[Path]) -> None:
    """Remove the folders a run made (:func:`missing_dirs`, deepest first) that are still
    empty, so a run that fails before writing anything leaves nothing behind (a user's
    `ka-ml score` before any `train` left an output folder holding only its lock file).
    A folder anything was written into since (another run's files) is kept, and so are
    those above it."""
    for folder in made:
        try:
            folder.rmdir()  # only an empty folder: nothing of anyone else's is removed
        except OSError:
            return
