"""Pure text shaping of a child's error output: one line for conditions, an excerpt for people.

A failed spark-submit leaves its whole stderr in `status.applicationState.errorMessage` (JVM
warnings, log4j lines, Java stack traces), and a failed Ray entrypoint leaves KubeRay's "Job
entrypoint command failed ..., last available logs ...:" followed by up to 20,000 characters of
its log. Copied as is, that text pushes the cause out of `kubectl get`, `mljob status` and Argo
CD's health message and repeats kilobytes in every condition. `summarize` names the cause in one
line; `excerpt` keeps the lines a person needs (the error lines, a few frames per exception, the
Python traceback), bounded, for one status field and the Warning Event. No I/O.
"""

from __future__ import annotations

import re

ELLIPSIS = "..."
UNREADABLE = "(a message without readable text)"
MAX_FRAMES = 3  # Java "at ..." frames kept per exception in an excerpt

# ANSI colour codes (Ray colours its task names) and other control characters but tab/newline.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")

# Leads that introduce a log: kept in front of the cause, their log-announcing tail dropped.
_LEADS = (
    # The Spark operator v2.5.2 writes "failed to submit spark application: failed to run
    # spark-submit: failed to run spark-submit: <stderr>" (seen in tests/e2e): one lead.
    re.compile(
        r"^(?:failed to submit spark application: )?"
        r"(?P<lead>failed to run spark-submit)(?:: ?failed to run spark-submit)*(?:: ?|$)"
    ),
    re.compile(
        r"^(?P<lead>(?:\w+: )?Job entrypoint command failed with exit code -?\d+)"
        r"(?:, last available logs \(truncated to [\d,]+ chars\):|\. No logs available\.)?"
    ),
)

# Lines that never name a cause: JVM warnings, INFO/WARN log lines (log4j, Python logging, Ray).
_NOISE = (
    re.compile(r"^WARNING: "),
    re.compile(r"^Using Spark's default log4j profile"),
    re.compile(r"^\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (?:TRACE|DEBUG|INFO|WARN)\b"),
    re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}[,.]?\d*\s+(?:DEBUG|INFO|WARNING)\b"),
    re.compile(r"^(?:DEBUG|INFO|WARNING|WARN):"),
)
_FRAME = re.compile(r"^\s+at \S")  # a Java stack frame
_MORE = re.compile(r"^\s+\.\.\. \d+ more$")
# A Java exception line: `Exception in thread "main" a.b.FooException: msg` or `Caused by: ...`.
_JAVA_EXCEPTION = re.compile(
    r'^(?:Exception in thread "[^"]*" |Caused by: )?'
    r"(?P<exc>(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)[\w$]*)"
    r"(?::\s*(?P<msg>.*))?$"
)
_PY_TRACEBACK = "Traceback (most recent call last):"
# The final line of a Python traceback: `ValueError: msg`, `ray.exceptions.RayTaskError(X): msg`.
_PY_ERROR = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Failure|Timeout)\w*"
    r"(?:\([\w.]+\))?(?::.*)?$"
)
_ERRORISH = re.compile(r"\b(?:error|exception|fatal|failed|failure|refused|denied)\b", re.I)


def summarize(text: str, limit: int) -> str:
    """One line of at most `limit` characters naming the cause in `text`.

    Known leads ("failed to run spark-submit", KubeRay's "Job entrypoint command failed with exit
    code N") stay in front; the cause is the most specific `Caused by:` of a Java stack trace,
    else the final `SomeError: message` of a Python traceback, else the last error-looking
    line, else the last line that is not log noise."""
    lines = _clean(text).split("\n")
    lead = ""
    match = _lead(lines[0]) if lines else None
    if match:
        lead = match.group("lead").rstrip(": ")
        lines[0] = lines[0][match.end() :].lstrip(": ")
    body = [line for line in lines if line.strip()]
    if len(body) <= 1 and not lead:
        summary = one_line(text, limit)
    else:
        found = [x for x in (_java_cause(body), _python_error(body)) if x[1]]
        cause = max(found)[1] if found else _last_error_line(body)
        summary = one_line(": ".join(part for part in (lead, cause) if part) or text, limit)
    # Never empty for a message that had something (only blanks or control characters).
    return summary or (clip(UNREADABLE, limit) if text else "")


def excerpt(text: str, limit: int) -> str:
    """The lines of `text` that explain a failure, at most `limit` characters: log noise
    dropped, Java traces cut to MAX_FRAMES frames per exception, tabs expanded; when still too
    long, the first line and the end (where the cause and the traceback are)."""
    kept: list[str] = []
    frames = 0
    lines = _clean(text).expandtabs(4).split("\n")
    match = _lead(lines[0])
    if match:  # "failed to run spark-submit: WARNING: ...": the lead, then the rest as a line
        kept.append(match.group(0).rstrip())
        lines[0] = lines[0][match.end() :].lstrip(": ")
    for line in lines:
        line = line.rstrip()
        if not line or _is_noise(line):
            continue
        if _FRAME.match(line):
            frames += 1
            if frames <= MAX_FRAMES:
                kept.append(line)
            continue
        if frames > MAX_FRAMES:
            kept.append(f"    ... {frames - MAX_FRAMES} frames left out")
        frames = 0
        kept.append(line)
    if frames > MAX_FRAMES:
        kept.append(f"    ... {frames - MAX_FRAMES} frames left out")
    return _keep_ends(kept, limit)


def tail(text: str, limit: int) -> str:
    """The last whole lines of `text` that fit in `limit` characters (one clipped line if even
    the last line is longer)."""
    lines = text.rstrip("\n").split("\n")
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + (1 if kept else 0) > limit:
            break
        kept.insert(0, line)
        size += len(line) + (1 if len(kept) > 1 else 0)
    return "\n".join(kept) if kept else clip(lines[-1], limit)


def one_line(text: str, limit: int) -> str:
    """`text` with every run of whitespace (newlines too) made one space, clipped to `limit`."""
    return clip(" ".join(_clean(text).split()), limit)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[:limit]
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


# --- helpers -----------------------------------------------------------------------------------
def _clean(text: str) -> str:
    text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def _lead(first_line: str) -> re.Match[str] | None:
    for pattern in _LEADS:
        match = pattern.match(first_line)
        if match:
            return match
    return None


def _is_noise(line: str) -> bool:
    return any(pattern.match(line) for pattern in _NOISE)


def _java_cause(lines: list[str]) -> tuple[int, str]:
    """(line index, text) of the most specific exception of the last Java trace: the deepest
    `Caused by:`, or, walking up from it while each parent's message contains its cause's, the
    last such parent ("Connection refused: /10.0.0.1:443" rather than a bare "Connection
    refused"; of wrappers repeating one message, the outermost: java.io.IOException rather than
    Netty's AnnotatedConnectException)."""
    chain: list[tuple[int, str, str]] = []
    for index, line in enumerate(lines):
        match = None if line[:1].isspace() else _JAVA_EXCEPTION.match(line)
        if not match:
            continue
        if not line.startswith("Caused by: "):
            chain = []  # a new top-level trace starts a new chain
        chain.append((index, match.group("exc"), (match.group("msg") or "").strip()))
    if not chain:
        return (-1, "")
    best = len(chain) - 1
    while best > 0 and chain[best][2] and chain[best][2] in chain[best - 1][2]:
        best -= 1
    exc, msg = chain[best][1], chain[best][2]
    return (chain[-1][0], f"{exc}: {msg}" if msg else exc)


def _python_error(lines: list[str]) -> tuple[int, str]:
    """(line index, text) of the final `SomeError: message` line of the last Python traceback."""
    starts = [i for i, line in enumerate(lines) if line.strip() == _PY_TRACEBACK]
    if not starts:
        return (-1, "")
    found = (-1, "")
    for index in range(starts[-1] + 1, len(lines)):
        line = lines[index]
        if not line[:1].isspace() and _PY_ERROR.match(line):
            found = (index, line)
    return found


def _last_error_line(lines: list[str]) -> str:
    meaningful = [line for line in lines if not _is_noise(line) and not _FRAME.match(line)]
    errorish = [line for line in meaningful if _ERRORISH.search(line)]
    if errorish:
        return errorish[-1]
    return meaningful[-1] if meaningful else (lines[-1] if lines else "")


def _keep_ends(lines: list[str], limit: int) -> str:
    """`lines` joined, or the first line and as many last lines as fit in `limit`."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    marker = "..."
    head = clip(lines[0], max(limit // 4, 1)) if lines else ""
    budget = limit - len(head) - len(marker) - 2
    if budget <= 0:
        return clip(text, limit)
    return f"{head}\n{marker}\n{tail(chr(10).join(lines[1:]), budget)}"
