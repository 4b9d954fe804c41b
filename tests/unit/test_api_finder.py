"""WhisperFinder over a real whisper tree: globs and exact names agree."""

from __future__ import annotations

import os

from cadent.api.finders.whisper import WhisperFinder
from cadent.core.write.layout import path_for


def _touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def test_exact_names_find_the_files_globs_find(tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    names = ["srv.cpu.user", "srv.cpu.system", "x.y;env=prod;host=h1"]
    for name in names:
        _touch(path_for(first, name, tag_hash_filenames=True))
    _touch(os.path.join(second, "old", "gz.wsp.gz"))
    _touch(path_for(second, "srv.cpu.user", tag_hash_filenames=True))
    finder = WhisperFinder([first, second])

    for name in names + ["old.gz"]:
        node = finder.find_exact(name)
        assert node is not None and node.is_leaf and node.path == name
        assert [n.fs_path for n in finder.find(name, leaves_only=True)] == [node.fs_path]
    # the first root that has the file wins, as for globs
    assert finder.find_exact("srv.cpu.user").fs_path.startswith(first)
    for missing in ("srv.cpu", "srv.cpu.nice", "srv..user", "srv.*.user", "x.y;env=dev"):
        assert finder.find_exact(missing) is None
