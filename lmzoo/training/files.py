"""A study's state files: written atomically, read defensively, and every write failure one clear error.

Everything a study keeps on disk (`study.yaml`, `run.json`, results, reports) goes through `write_atomic`: a
temporary file in the same directory, fsync, then `os.replace`, so a crash or `kill -9` mid-write leaves the old
file or the new one, never half of one. A file that is rewritten with the content it already has is left
untouched, so running a finished study again writes nothing (and works on a read-only copy).

A state file that cannot be parsed (truncated by a crash of another tool, edited by hand) is moved aside to
`NAME.corrupt-<time>` with one line saying so, and the study carries on without it (`read_json`). A full disk
or a read-only directory becomes one `OutputError` naming the directory and what to do (`writing`).
"""

import contextlib
import errno
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

from lmzoo.errors import OutputError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def notice(message):
    """One line to the user on stderr (resumed and skipped runs, files moved aside)."""
    print(f"lmzoo: {message}", file=sys.stderr, flush=True)


def write_atomic(path, content):
    """Write `content` (str or bytes) to `path` through a temporary file, fsync and `os.replace`.

    Readers never see half a file. A file that already holds `content` is not touched. A full disk or a read-only
    directory raises `OutputError` (see `writing`) and leaves no temporary file behind.

    Examples:

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a" / "note.txt"
        >>> write_atomic(path, "hello\\n")
        >>> path.read_text()
        'hello\\n'
    """
    path = pathlib.Path(path)
    data = content.encode() if isinstance(content, str) else bytes(content)
    if _holds(path, data):
        return
    with writing(path.parent, needed_bytes=len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _holds(path, data):
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def write_json(path, obj):
    """`write_atomic` of `obj` as indented JSON (numpy scalars become Python numbers)."""
    write_atomic(path, json.dumps(obj, indent=2, default=_to_builtin) + "\n")


def _to_builtin(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_json(path, default=None):
    """The JSON object at `path`; `default` when the file does not exist or is corrupt.

    A file that is not a JSON object (truncated, edited) is moved aside with `quarantine`, so the next run of the
    study starts that run's record afresh instead of failing on it again.

    Examples:

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.json"
        >>> _ = path.write_text('{"status": "fini')  # a write cut short
        >>> read_json(path, {})  # doctest: +ELLIPSIS
        {}
        >>> path.exists()
        False
    """
    path = pathlib.Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        quarantine(path, reason=f"not valid JSON ({error})")
        return default
    if not isinstance(value, dict):
        quarantine(path, reason=f"a JSON {type(value).__name__}, not an object")
        return default
    return value


def quarantine(*paths, reason, what=None):
    """Move corrupt files aside to `NAME.corrupt-<time>` (kept for inspection) and say so in one line.

    `what` names them in that line (default: the first path). On a read-only directory the files stay where they
    are and are ignored. Returns the new paths.
    """
    what = what or paths[0]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved = []
    for path in map(pathlib.Path, paths):
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        try:
            path.replace(target)
        except OSError:
            notice(f"{what} is corrupt ({reason}); ignored (its directory is not writable).")
            return moved
        moved.append(target)
    if moved:
        notice(f"{what} is corrupt ({reason}); moved aside to {', '.join(p.name for p in moved)}.")
    return moved


@contextlib.contextmanager
def writing(directory, needed_bytes=None, what="the study's state"):
    """Turn a failed write under `directory` into one `OutputError` that names it and says what to do.

    Covers Python's `OSError` and TensorFlow's file errors (checkpoints, `model.keras`, TensorBoard logs): a
    full disk says how much space the write needed and how much is free; a read-only or forbidden directory
    says to pass `--out` elsewhere.
    """
    try:
        yield
    except Exception as error:
        converted = output_error(error, directory, needed_bytes, what)
        if converted is None:
            raise
        raise converted from error


def output_error(error, directory, needed_bytes=None, what="the study's state"):
    """The `OutputError` for a failed write under `directory`, or None when `error` is not a disk fault."""
    code = getattr(error, "errno", None)
    text = str(error)
    if code in _NO_SPACE or "No space left on device" in text or "Disk quota exceeded" in text:
        need = f"about {_megabytes(needed_bytes)} needed, " if needed_bytes else ""
        return OutputError(
            f"No space left on the device of {directory} while writing {what} ({need}{_megabytes(_free(directory))} "
            f"free). Free some space, or pass --out on another disk, and run the same command again: it resumes "
            f"from the last good checkpoint."
        )
    if code in _NOT_WRITABLE or "Read-only file system" in text or "Permission denied" in text:
        return OutputError(
            f"Cannot write to {directory} ({text.strip().splitlines()[0] if text.strip() else type(error).__name__}). "
            f"Pass --out to a writable directory (a finished study can be reported elsewhere with "
            f"`lmzoo report STUDY_DIR --out OTHER_DIR`)."
        )
    return None


def check_writable(directory):
    """Raise `OutputError` unless files can be created in `directory` (created if missing)."""
    directory = pathlib.Path(directory)
    with writing(directory):
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".lmzoo-write-check.")
        os.close(fd)
        os.unlink(probe)


def _free(directory):
    path = pathlib.Path(directory)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def _megabytes(num_bytes):
    return f"{num_bytes / 1e6:,.1f} MB"
