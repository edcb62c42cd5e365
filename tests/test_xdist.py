"""The suite under pytest-xdist (``pytest -n 2``): tests/conftest.py gives each worker its own
temporary directory and $XDG_RUNTIME_DIR (so its mounts' control sockets), checks in each
worker that nothing was left there, and removes them all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO

pytest_plugins = ["pytester"]


def test_each_worker_has_its_own_temporary_directories_and_checks_them(pytester: pytest.Pytester,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    shutil.copy(REPO / "tests" / "conftest.py", pytester.path / "conftest.py")
    out = pytester.mkdir("out")
    pytester.makepyfile(test_private=f'''
        import os
        import tempfile
        from pathlib import Path

        import pytest
        from conftest import PRIVATE_RUNTIME_DIR, SESSION_TMP

        @pytest.mark.parametrize("i", range(6))
        def test_private(worker_id, i):
            assert os.environ["TMPDIR"] == tempfile.gettempdir() == SESSION_TMP
            assert os.environ["XDG_RUNTIME_DIR"] == PRIVATE_RUNTIME_DIR
            Path({str(out)!r}, f"{{worker_id}}-{{i}}").write_text(SESSION_TMP)
            if i == 5:
                os.close(tempfile.mkstemp(prefix="forgotten-")[0])  # the check must catch it
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", timeout=300)
    result.assert_outcomes(passed=6, errors=1)
    result.stdout.fnmatch_lines(["*the suite left temporary files or directories behind: [[]'*/forgotten-*'[]]*"])
    dirs = {path.name.split("-")[0]: path.read_text() for path in out.iterdir()}
    assert set(dirs) == {"gw0", "gw1"}, dirs
    assert len(set(dirs.values())) == 2  # one per worker
    assert not any(Path(d).exists() for d in dirs.values())  # and each removed at the end
