"""Private helpers' behaviour that no public call pins down on its own (these were
examples in their docstrings)."""

from __future__ import annotations

import os
import sys

import pytest

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@posix_only
def test_create_temp_names_the_file_after_its_target_and_follows_the_umask(tmp_path):
    from xpnet._files import create_temp

    old = os.umask(0o027)
    try:
        fd, tmp = create_temp(tmp_path / "data.gz", ".part")
    finally:
        os.umask(old)
    os.close(fd)
    assert tmp.parent == tmp_path and tmp.name.startswith(".data.gz.")
    assert tmp.suffix == ".part" and oct(tmp.stat().st_mode & 0o777) == "0o640"
