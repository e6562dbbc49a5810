"""messages.summarize / excerpt on real upstream error text (tests/unit/data/README.md)."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mljob import constants as c
from mljob.messages import clip, excerpt, one_line, summarize, tail

DATA = Path(__file__).parent / "data"
SPARK = (DATA / "spark_submit_failed.txt").read_text()
RAY_APP = "AppFailed: " + (DATA / "rayjob_app_failed.txt").read_text()
RAY_INVALID = "ValidationFailed: " + (DATA / "rayjob_validation_failed.txt").read_text()

SUMMARIES = [
    # the whole spark-submit stderr: the lead, then the most specific Caused by
    (SPARK, "failed to run spark-submit: java.io.IOException: Connection refused: /127.0.0.1:1"),
    # KubeRay's AppFailed: the lead without its log announcement, then the final Python error
    (
        RAY_APP,
        "AppFailed: Job entrypoint command failed with exit code 1: ValueError: no rows in "
        "s3a://lake/churn/run-1/features/part-0000.parquet: was the prepare step's output written?",
    ),
    # one long line: clipped, its start kept
    (
        RAY_INVALID,
        "ValidationFailed: The RayJob metadata is invalid: RayJob name should be a valid DNS1035 "
        "label: [a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
        "start with an alphabetic...",
    ),
    # short one-line messages pass unchanged
    ("driver container failed with ExitCode: 1, Reason: Error",) * 2,
    ("DeadlineExceeded: The RayJob has passed the activeDeadlineSeconds.",) * 2,
    (
        "AppFailed: Job entrypoint command failed with exit code 2. No logs available.",
        "AppFailed: Job entrypoint command failed with exit code 2",
    ),
    # no trace: the last error-looking line, not the log noise after it
    (
        "starting\nERROR: cannot open /data/x.csv\n"
        "2026-12-06 00:05:21,464\tINFO worker.py:1 -- bye",
        "ERROR: cannot open /data/x.csv",
    ),
    # a Python traceback without a message: the exception's name
    (
        'Traceback (most recent call last):\n  File "a.py", line 1\nKeyboardInterrupt',
        "KeyboardInterrupt",
    ),
    # a Java cause with no more specific message than its parent: the deepest one
    (
        'Exception in thread "main" org.apache.spark.SparkException: Job aborted\n'
        "\tat a.b(C.java:1)\n"
        "Caused by: java.lang.OutOfMemoryError: Java heap space\n\tat d.e(F.java:2)",
        "java.lang.OutOfMemoryError: Java heap space",
    ),
    ("", ""),
    (" \n\x1b[0m ", "(a message without readable text)"),
]


@pytest.mark.parametrize(("text", "expected"), SUMMARIES)
def test_summarize_names_the_cause(text, expected):
    assert summarize(text, c.MAX_CHILD_SUMMARY) == expected


@pytest.mark.parametrize("text", [SPARK, RAY_APP])
def test_summary_leaves_out_the_noise_that_came_first(text):
    summary = summarize(text, c.MAX_CHILD_SUMMARY)
    assert "WARNING" not in summary and "INFO" not in summary and "\x1b" not in summary


def test_spark_excerpt_keeps_the_error_lines_and_drops_the_noise():
    text = excerpt(SPARK, c.MAX_DETAILS)
    assert len(SPARK) > 5000 and len(text) < 1600
    lines = text.splitlines()
    assert lines[0] == "failed to run spark-submit:"
    assert 'ERROR Client: Please check "kubectl auth can-i create pod" first.' in text
    for cause in ("IOException: Connection refused: /127.0.0.1:1", "java.net.ConnectException"):
        assert any(cause in line and line.startswith("Caused by: ") for line in lines)
    assert "WARNING: Using incubator modules" not in text and " INFO " not in text
    assert "\t" not in text
    assert "    ... 17 frames left out" in lines  # the top trace keeps 3 of its 20 frames


def test_ray_excerpt_keeps_the_traceback_without_colour_codes():
    text = excerpt(RAY_APP, c.MAX_DETAILS)
    assert "Traceback (most recent call last):" in text
    assert text.endswith("was the prepare step's output written?")
    assert "ray::load_shard() (pid=" in text and "\x1b" not in text
    assert "INFO worker.py" not in text and "Token authentication" not in text


def test_excerpt_over_the_limit_keeps_the_start_and_the_end():
    text = excerpt(SPARK, 600)
    assert len(text) <= 600
    assert text.startswith("failed to run spark-submit:\n...\n")
    assert text.endswith("... 14 frames left out")


def test_tail_keeps_whole_last_lines():
    assert tail("one\ntwo\nthree", 9) == "two\nthree"
    assert tail("one\ntwo\nthree", 100) == "one\ntwo\nthree"
    assert tail("a very long last line", 10) == "a very..."


def test_clip_and_one_line():
    assert clip("abcdef", 6) == "abcdef"
    assert clip("abcdefg", 6) == "abc..."
    assert clip("abcdefg", 2) == "ab"
    assert one_line(" a\n\tb\r\n c ", 100) == "a b c"


LIMITS = st.integers(min_value=1, max_value=400)
TEXTS = st.one_of(
    st.text(),
    st.lists(
        st.sampled_from(
            [
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in f',
                "ValueError: bad",
                'Exception in thread "main" a.b.CException: top',
                "Caused by: java.io.IOException: deep",
                "\tat a.b(C.java:1)",
                "\t... 3 more",
                "WARNING: Using incubator modules: jdk.incubator.vector",
                "26/12/06 00:03:35 WARN Utils: x",
                "failed to run spark-submit: ",
                "Job entrypoint command failed with exit code 1, "
                "last available logs (truncated to 20,000 chars):",
                "\x1b[36mray::f()\x1b[39m",
                "",
                " ",
                "\u2028",
            ]
        )
        | st.text(),
        max_size=30,
    ).map("\n".join),
)


@given(TEXTS, LIMITS)
def test_summary_is_one_short_line_never_empty_for_non_empty_input(text, limit):
    summary = summarize(text, limit)
    assert len(summary) <= limit
    assert len(summary.splitlines()) <= 1 and "\n" not in summary
    if text:
        assert summary


@given(TEXTS, LIMITS)
def test_excerpt_is_bounded(text, limit):
    assert len(excerpt(text, limit)) <= limit


def test_the_spark_operators_own_prefix_is_one_lead():
    """What the real Spark operator v2.5.2 wrote in the end-to-end tier: its own prefix and the
    lead twice before spark-submit's output (the hand-made corpus had the lead once)."""
    text = (DATA / "spark_operator_submit_failed_e2e.txt").read_text()
    assert summarize(text, 300) == (
        "failed to run spark-submit: org.apache.spark.SparkException: "
        "Please specify spark.kubernetes.file.upload.path property."
    )
    assert excerpt(text, 2048).startswith(
        "failed to submit spark application: failed to run spark-submit: "
        'failed to run spark-submit:\nException in thread "main" org.apache.spark.SparkException'
    )


# --- exact boundaries (found by make mutants) ----------------------------------------------------
def test_tail_keeps_the_last_whole_lines_that_fit_exactly():
    from mljob.messages import tail

    text = "aaaa\nbbbb\ncccc\n"
    assert (
        tail(text, 14) == "aaaa\nbbbb\ncccc"
    )  # 4 + 1 + 4 + 1 + 4: all fit, no newline counted twice
    assert tail(text, 13) == "bbbb\ncccc"
    assert tail(text, 9) == "bbbb\ncccc"
    assert tail(text, 8) == "cccc"
    assert tail(text, 4) == "cccc"
    assert tail("\nleading\nx", 20) == "\nleading\nx"  # only trailing newlines go


def test_excerpt_keeps_three_frames_per_exception_and_counts_the_rest():
    from mljob.messages import MAX_FRAMES, excerpt

    frames = [f"\tat org.example.Job.step{i}(Job.java:{i})" for i in range(MAX_FRAMES + 2)]
    text = "\n".join(["java.lang.IllegalStateException: boom", *frames])
    lines = excerpt(text, 10_000).split("\n")
    assert lines[0] == "java.lang.IllegalStateException: boom"
    assert lines[1:-1] == [f.expandtabs(4) for f in frames[:MAX_FRAMES]]
    assert lines[-1] == "    ... 2 frames left out"
    exactly = "\n".join(["java.lang.IllegalStateException: boom", *frames[:MAX_FRAMES], "next"])
    assert "left out" not in excerpt(exactly, 10_000)  # three frames: nothing left out
    assert excerpt(exactly, 10_000).split("\n")[-1] == "next"
