"""A C reference cache that cannot be made is the benchmark's one-line note, not a traceback.

Seen from outside the suite: ``XDG_CACHE_HOME=/dev/null rpmsg bench shm --json`` (or a home
directory on a read-only or full file system) died with a NotADirectoryError traceback from
``cref.build``'s ``mkdir``, before measuring anything; a missing compiler was already a note.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rpmsg.bench import cref
from rpmsg.errors import NotAvailableError


@pytest.fixture
def unusable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    try:
        cref.compiler()
    except NotAvailableError:
        pytest.skip("no C compiler: the build stops before the cache directory")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    return blocker


def test_an_unusable_cache_directory_is_a_typed_error(unusable_cache: Path) -> None:
    src = unusable_cache.parent / "hello.c"
    src.write_text("int main(void) { return 0; }\n")
    with pytest.raises(NotAvailableError, match="XDG_CACHE_HOME") as info:
        cref.build("hello", [src])
    assert "\n" not in str(info.value)


def test_the_shm_benchmark_notes_it_and_runs_without_c(
        unusable_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rpmsg.bench import shm
    from rpmsg.bench.shm_host import Workload

    work = Workload(rounds=20, echo=50, min_seconds=0.0, stream=200, sizes=(16,), windows=(1,))
    result = shm.run(work=work, pairs=(("link", "link"),))
    assert result["c_reference"].startswith("skipped: cannot build the C reference")
    assert list(result["pairs"]) == ["rpmsg link<->rpmsg link"]
    assert "XDG_CACHE_HOME" in capsys.readouterr().err
