"""Which cached images a successful build makes obsolete (mljob.testing.image.superseded): the
pure selection; `prune` only hands its answer to `podman rmi`."""

from __future__ import annotations

from mljob.testing.image import IMAGE_NAME, PRUNE_MIN_AGE_SECONDS, CachedImage, superseded

NOW = 2_000_000_000.0
OLD = NOW - PRUNE_MIN_AGE_SECONDS - 1
CURRENT = f"{IMAGE_NAME}:test-new"
RUNTIME = "localhost/mljob-base-runtime:bookworm-new"
BUILD = "localhost/mljob-base-build:bookworm-new"
KEEP = {CURRENT, RUNTIME, BUILD}


def image(name: str | None, created: float = OLD, containers: int = 0) -> CachedImage:
    return CachedImage(f"id-{name}", (name,) if name else (), created, containers)


def ids(images: list[CachedImage]) -> list[str]:
    return [i.id for i in images]


def test_the_current_image_and_its_bases_stay_older_builds_and_bases_go():
    cached = [
        image(CURRENT),
        image(RUNTIME),
        image(BUILD),
        image(f"{IMAGE_NAME}:test-old"),
        image("localhost/mljob-base-runtime:bookworm-old"),
        image(None),  # an untagged leftover (a tag moved away from it)
    ]
    assert ids(superseded(cached, KEEP, NOW)) == [
        f"id-{IMAGE_NAME}:test-old",
        "id-localhost/mljob-base-runtime:bookworm-old",
        "id-None",
    ]


def test_images_that_are_not_ours_stay():
    cached = [image("docker.io/library/python:3.11"), image("localhost/other:1")]
    assert superseded(cached, KEEP, NOW) == []


def test_an_image_with_a_name_to_keep_stays_even_under_an_old_name_too():
    both = CachedImage("id-both", (f"{IMAGE_NAME}:test-old", CURRENT), OLD, 0)
    assert superseded([both], KEEP, NOW) == []


def test_an_image_also_named_outside_the_cache_stays():
    shared = CachedImage("id-shared", (f"{IMAGE_NAME}:test-old", "registry/x:1"), OLD, 0)
    assert superseded([shared], KEEP, NOW) == []


def test_a_recent_build_of_another_session_and_an_image_in_use_stay():
    recent = image(f"{IMAGE_NAME}:test-other", created=NOW - PRUNE_MIN_AGE_SECONDS + 1)
    running = image(f"{IMAGE_NAME}:test-running", containers=1)
    just_old = image(f"{IMAGE_NAME}:test-hour", created=NOW - PRUNE_MIN_AGE_SECONDS)
    assert ids(superseded([recent, running, just_old], KEEP, NOW)) == [f"id-{IMAGE_NAME}:test-hour"]
