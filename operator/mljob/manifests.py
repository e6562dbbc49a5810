"""Read an MLJob manifest file: path in, MLJob mapping or one line saying what is wrong.

Every `mljob` command that takes a file goes through `read_mljob`, so a bad file gets the same
specific message whichever command read it, and never a traceback. Validation of the MLJob's
fields is not done here (that is `mljob.validation`, shared with the operator): this only makes
sure the file holds exactly one MLJob-shaped YAML document.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Any

import yaml

from mljob import constants as c

# etcd refuses requests over 1.5 MiB (its default --max-request-bytes), so no bigger MLJob
# can ever be created; a file that big is a mistake (a data file, a log): stop reading there.
MAX_BYTES = 3 << 19
MAX_SIZE_TEXT = "1.5 MiB"
# The deepest real MLJob (a pod template's affinity under a step's template) is ~20 levels;
# far deeper documents would overflow the recursion of validation and rendering.
MAX_DEPTH = 100
# YAML aliases can make a 1 KiB file expand to billions of values ("billion laughs").
MAX_VALUES = 1_000_000

Obj = dict[str, Any]


class ManifestError(ValueError):
    """What is wrong with a manifest file: one line that starts with the file's name."""


def read_mljob(path: str | os.PathLike[str], kinds: tuple[str, ...] = (c.KIND,)) -> Obj:
    """The one MLJob in the file at `path`, or ManifestError saying what is wrong with it.
    `kinds`: the kinds the command takes (`mljob validate` and `render` take ScheduledMLJob)."""
    shown = display_path(path)
    return parse_mljob(_read_bytes(path, shown), shown, kinds)


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as the user typed it, quoted if it holds newlines or other control
    characters (so the error stays one line)."""
    text = os.fsdecode(path)
    return text if text.isprintable() else repr(text)


def _read_bytes(path: str | os.PathLike[str], shown: str) -> bytes:
    """The file's bytes, at most MAX_BYTES + 1 (enough to tell it is too big). Opened
    non-blocking so that a FIFO nobody writes to reads as empty instead of hanging; a pipe that
    has a writer (`<(...)`) is read normally."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ManifestError(f"{shown}: no such file") from None
    except OSError as error:
        raise ManifestError(f"{shown}: cannot open: {_reason(error)}") from None
    except ValueError:  # a NUL character: no file can have that name
        raise ManifestError(f"{shown}: not a valid path") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ManifestError(f"{shown}: is a directory; expected an MLJob manifest file")
        if stat.S_ISFIFO(mode):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise ManifestError(f"{shown}: cannot read: {_reason(error)}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if not data and stat.S_ISFIFO(mode):
        raise ManifestError(f"{shown}: nothing to read (a pipe with no writer)")
    return data


def _reason(error: OSError) -> str:
    reason = error.strerror or str(error)
    return reason[:1].lower() + reason[1:]


def parse_mljob(data: bytes, shown: str, kinds: tuple[str, ...] = (c.KIND,)) -> Obj:
    """The MLJob (or another of `kinds`) in `data` (a file's bytes), or ManifestError naming
    `shown`. Pure."""
    if not data:
        raise ManifestError(f"{shown}: empty file; expected one MLJob")
    if len(data) > MAX_BYTES:
        raise ManifestError(
            f"{shown}: larger than {MAX_SIZE_TEXT}, the most etcd stores for one object; "
            "an MLJob manifest is far smaller"
        )
    text = _decode(data, shown)
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise ManifestError(_yaml_message(error, text, shown)) from None
    except RecursionError:
        raise ManifestError(
            f"{shown}: nested more than {MAX_DEPTH} levels deep; an MLJob needs far fewer"
        ) from None
    if not documents:
        raise ManifestError(
            f"{shown}: no YAML document (only blank lines or comments); expected one MLJob"
        )
    if len(documents) > 1:
        raise ManifestError(
            f"{shown}: {len(documents)} YAML documents; expected exactly one MLJob per file"
        )
    document = documents[0]
    if not isinstance(document, dict):
        raise ManifestError(
            f"{shown}: the document is {_describe(document)}, not a mapping; expected an "
            f"MLJob (apiVersion: {c.API_VERSION}, kind: {c.KIND}, metadata, spec)"
        )
    problems = [
        f"{field} is {_short(document[field])}, expected {' or '.join(expected)}"
        if field in document
        else f"no {field}, expected {field}: {' or '.join(expected)}"
        for field, expected in (("apiVersion", (c.API_VERSION,)), ("kind", kinds))
        if document.get(field) not in expected
    ]
    if problems:
        raise ManifestError(f"{shown}: " + "; ".join(problems))
    _check_shape(document, shown)
    return document


def _check_shape(document: Obj, shown: str) -> None:
    """Refuse what would make validation or rendering recurse without end or explode: too
    deep, aliases that refer to themselves, aliases that expand to too many values. One
    iterative walk that visits each shared (aliased) node once."""
    height: dict[int, int] = {}
    values: dict[int, int] = {}
    path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if finished:
            path.discard(key)
            nested = [c for c in children if isinstance(c, dict | list)]
            height[key] = 1 + max((height[id(c)] for c in nested), default=0)
            values[key] = 1 + sum(values.get(id(c), 1) for c in children)
            if height[key] > MAX_DEPTH:
                raise ManifestError(
                    f"{shown}: nested more than {MAX_DEPTH} levels deep; an MLJob needs far fewer"
                )
            if values[key] > MAX_VALUES:
                raise ManifestError(
                    f"{shown}: its YAML aliases expand to more than {MAX_VALUES:,} values"
                )
        elif key not in height:
            if key in path:
                raise ManifestError(f"{shown}: a YAML alias refers to itself (a cycle)")
            path.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list))


def _decode(data: bytes, shown: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ManifestError(f"{shown}: UTF-16 text (byte-order mark); save it as UTF-8")
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark is allowed, as in kubectl
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        byte = data[error.start]
        raise ManifestError(
            f"{shown}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x}); "
            "is it a binary file or another encoding?"
        ) from None


def _yaml_message(error: yaml.YAMLError, text: str, shown: str) -> str:
    """`file:line:column: not valid YAML: problem`, on one line."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        where = f"{mark.line + 1}:{mark.column + 1}"
        what = error.problem or ""
        if error.context:
            what += f" ({error.context}"
            if error.context_mark is not None:
                what += f" at line {error.context_mark.line + 1}"
            what += ")"
    elif isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        where = f"{line}:{column}"
        what = f"character #x{error.character:04x} not allowed"
    else:
        return f"{shown}: not valid YAML: {' '.join(str(error).split())}"
    return f"{shown}:{where}: not valid YAML: {' '.join(what.split())}"


def _describe(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number"}
    return next((text for t, text in kinds.items() if isinstance(value, t)), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
