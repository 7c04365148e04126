"""scripts/setup.sh refuses machines it cannot serve, at once and saying what to do."""

import glob
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).parents[1]
SETUP = REPO / 'scripts' / 'setup.sh'


def run_setup(env_changes: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_changes}
    return subprocess.run([shutil.which('bash'), str(SETUP)], env=env, capture_output=True, text=True, timeout=60)


def unsupported_pythons() -> list[str]:
    """Real interpreters on this machine outside 3.10-3.12 (pyenv keeps several)."""
    candidates = glob.glob(os.path.expanduser('~/.pyenv/versions/3.*/bin/python3'))
    candidates += [shutil.which(f'python3.{minor}') for minor in (8, 9, 13, 14)]
    found = []
    for path in filter(None, candidates):
        version = subprocess.run([path, '-c', 'import sys; print(sys.version_info[1])'],
                                 capture_output=True, text=True).stdout.strip()
        if version and not 10 <= int(version) <= 12:
            found.append(path)
    return sorted(set(found))


@pytest.mark.parametrize('python', unsupported_pythons() or ['none-found'])
def test_refuses_an_unsupported_python(python):
    if python == 'none-found':
        pytest.skip('no Python outside 3.10-3.12 on this machine')
    result = run_setup({'PYTHON': python})
    assert result.returncode == 2
    assert 'is not supported: use Python 3.10, 3.11 or 3.12' in result.stderr
    assert 'apt and colcon' in result.stderr


def test_refuses_a_missing_python():
    result = run_setup({'PYTHON': 'python3-that-does-not-exist'})
    assert result.returncode == 2
    assert "no 'python3-that-does-not-exist' found" in result.stderr


def test_refuses_a_machine_without_cmake(tmp_path):
    # A PATH with every tool the script uses but cmake.
    for tool in ('gcc', 'g++', 'cc', 'c++', 'uname', 'cat', 'sha256sum', 'cut', 'dirname'):
        path = shutil.which(tool)
        if path:
            (tmp_path / tool).symlink_to(path)
    # This very interpreter (3.10-3.12 by construction), so only cmake is missing.
    python = os.path.realpath(sys.executable)
    result = run_setup({'PATH': str(tmp_path), 'PYTHON': python})
    assert result.returncode == 2
    assert 'cmake is missing' in result.stderr


def test_second_run_is_a_no_op():
    result = run_setup({})
    assert result.returncode == 0, result.stderr
    assert 'up to date' in result.stdout
