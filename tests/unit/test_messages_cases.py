"""messages.summarize / excerpt / tail / clip on small exact cases: which line names the cause,
where a log is cut, what a limit keeps. Each case states one rule of mljob.messages."""

from __future__ import annotations

import pytest

from mljob.messages import clip, excerpt, summarize, tail

LIMIT = 300
RAY_LEAD = "AppFailed: Job entrypoint command failed with exit code 1"
TRACEBACK = 'Traceback (most recent call last):\n  File "train.py", line 3, in <module>\n    fit()'


# --- summarize: which line names the cause -------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # KubeRay's lead with the cause on the same line: "lead: cause", the separator once
        (f"{RAY_LEAD}: ValueError: bad row", f"{RAY_LEAD}: ValueError: bad row"),
        (f"{RAY_LEAD}: XGBoostError: bad param", f"{RAY_LEAD}: XGBoostError: bad param"),
        # one line without a lead stays whole, even a Java exception line
        (
            'Exception in thread "main" java.lang.IllegalStateException: boom',
            'Exception in thread "main" java.lang.IllegalStateException: boom',
        ),
        # two lines: the error-looking one, not both joined
        ("starting\nERROR: cannot open x.csv", "ERROR: cannot open x.csv"),
        # the error line, not what the program printed after it
        ("ERROR: cannot open x.csv\nshutting down", "ERROR: cannot open x.csv"),
        # no error-looking line: the last meaningful one (not log noise)
        ("step one\nstep two\nstep three", "step three"),
        ("starting\nstill going\n2026-12-06 00:05:21,464\tINFO worker.py:1 -- bye", "still going"),
        # log noise never names the cause, even when it says "failed"
        (
            "ERROR: cannot open x.csv\n2026-12-06 00:05:21,464\tINFO worker.py:1 -- retry failed",
            "ERROR: cannot open x.csv",
        ),
        # nothing but noise: its last line
        ("WARNING: a\nWARNING: b\nWARNING: c", "WARNING: c"),
        # control characters are dropped, not replaced
        ("disk \x00full\x07", "disk full"),
    ],
)
def test_the_line_that_names_the_cause(text: str, expected: str) -> None:
    assert summarize(text, LIMIT) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the traceback's final error line, not the runner's line after it
        (
            f"{TRACEBACK}\nZeroDivisionError: division by zero\nJob raysubmit_1 failed",
            "ZeroDivisionError: division by zero",
        ),
        # the error line right after the header (frames left out by a log cut)
        ("Traceback (most recent call last):\nMemoryError\nJob raysubmit_1 failed", "MemoryError"),
        # a traceback cut before its error line: its last line, not an error from before it
        (f"KeyError: 'x'\n{TRACEBACK}", "fit()"),
    ],
)
def test_a_python_traceback_is_named_by_its_final_error_line(text: str, expected: str) -> None:
    assert summarize(text, LIMIT) == expected


JAVA_TOP = 'Exception in thread "main" '


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # an exception without a message: its name alone
        (
            f"{JAVA_TOP}java.lang.NullPointerException\n\tat a.b(C.java:1)",
            "java.lang.NullPointerException",
        ),
        # the parent's message contains the cause's and says more: the parent
        (
            f"{JAVA_TOP}org.apache.spark.SparkException: Job aborted: Connection refused: /10.0.0.1"
            "\n\tat a.b(C.java:1)\nCaused by: java.net.ConnectException: Connection refused",
            "org.apache.spark.SparkException: Job aborted: Connection refused: /10.0.0.1",
        ),
        # three deep: the middle one says more than the deepest, the top says something else
        (
            f"{JAVA_TOP}a.b.TopException: stage 3 failed\nCaused by: a.b.MidException: read x: boom"
            "\nCaused by: java.io.IOException: boom",
            "a.b.MidException: read x: boom",
        ),
        # wrappers repeating one message: the outermost (as in tests/unit/data's spark-submit)
        (
            f"{JAVA_TOP}java.io.IOException: refused: /10.0.0.1\n"
            "Caused by: io.netty.AnnotatedConnectException: refused: /10.0.0.1",
            "java.io.IOException: refused: /10.0.0.1",
        ),
    ],
)
def test_a_java_trace_is_named_by_its_most_specific_cause(text: str, expected: str) -> None:
    assert summarize(text, LIMIT) == expected


def test_of_a_java_trace_and_a_python_traceback_the_later_one_names_the_cause() -> None:
    java = f"{JAVA_TOP}java.lang.IllegalStateException: jvm side\n\tat a.b(C.java:1)"
    python = f"{TRACEBACK}\nValueError: python side"
    assert summarize(f"{java}\n{python}", LIMIT) == "ValueError: python side"
    assert summarize(f"{python}\n{java}", LIMIT) == "java.lang.IllegalStateException: jvm side"


# --- excerpt -------------------------------------------------------------------------------------
def test_an_excerpt_puts_the_cause_after_the_lead_on_its_own_line() -> None:
    assert excerpt(f"{RAY_LEAD}: XGBoostError: bad param", 1000) == (
        f"{RAY_LEAD}\nXGBoostError: bad param"
    )


def test_an_excerpt_splits_progress_lines_written_with_carriage_returns() -> None:
    text = "progress 10%\rprogress 100%\r\nValueError: bad"
    assert excerpt(text, 1000) == "progress 10%\nprogress 100%\nValueError: bad"


def test_a_log_cut_in_the_middle_of_a_trace_keeps_three_of_its_frames() -> None:
    """KubeRay keeps the last 20,000 characters of a log: it may start inside a Java trace."""
    frames = [f"\tat a.F{i}(F.java:{i})" for i in range(4)]
    assert excerpt("\n".join(frames), 1000).split("\n") == [
        *(f.expandtabs(4) for f in frames[:3]),
        "    ... 1 frames left out",
    ]


def test_a_trace_ending_with_exactly_three_frames_leaves_nothing_out() -> None:
    text = "java.lang.IllegalStateException: boom\n" + "\n".join(
        f"\tat a.F{i}(F.java:{i})" for i in range(3)
    )
    assert excerpt(text, 1000) == text.expandtabs(4)


def test_an_excerpt_exactly_at_its_limit_is_whole() -> None:
    text = "first line\nValueError: bad"
    assert excerpt(text, len(text)) == text


def test_an_excerpt_over_its_limit_keeps_the_first_lines_start_and_the_last_lines() -> None:
    first = "F" * 100  # clipped to a quarter of the limit
    assert excerpt(f"{first}\nline 1\nline 2", 100) == ("F" * 22 + "...\n...\nline 1\nline 2")


def test_the_end_of_an_over_long_excerpt_fills_its_limit_exactly() -> None:
    """limit 101: head 25 ("F" * 22 + "..."), the marker line, and 71 characters of whole last
    lines: 8 lines of 8 characters and their 7 newlines."""
    rest = [f"line {i:03}" for i in range(1, 13)]
    text = excerpt("\n".join(["F" * 100, *rest]), 101)
    assert text == "F" * 22 + "...\n...\n" + "\n".join(rest[-8:])
    assert len(text) == 101


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (7, "a\n...\ni"),  # a quarter of 7 for the start, one character of the end
        (6, "ab..."),  # no room left for the end: the text clipped
    ],
)
def test_a_tiny_limit_still_keeps_the_start(limit: int, expected: str) -> None:
    assert excerpt("ab\ncdefgh\nijk", limit) == expected


# --- tail, clip ----------------------------------------------------------------------------------
def test_tail_keeps_lines_as_written() -> None:
    assert tail("first\n  indented \n", 100) == "first\n  indented "
    assert tail("step 1\nerror in matrix X", 100) == "step 1\nerror in matrix X"


def test_clip_without_room_for_the_ellipsis_just_cuts() -> None:
    assert clip("abcdef", 3) == "abc"
    assert clip("abcdef", 4) == "a..."
