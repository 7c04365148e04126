"""The package's installed share files (launch, config, models, sample bag) through the ament index."""

from __future__ import annotations

from pathlib import Path

PACKAGE = 'spotvlm_ros'
SCHEME = 'package://'
# The trained default models as the config names them; `tiny` is the random-weight test model.
DEFAULT_EDGE_CHECKPOINT = f'{SCHEME}{PACKAGE}/models/spotvlm-edge'
DEFAULT_CLOUD_CHECKPOINT = f'{SCHEME}{PACKAGE}/models/spotvlm-cloud'
SAMPLE_BAG = f'{SCHEME}{PACKAGE}/bags/sample_scene'
DEFAULT_CALIBRATION = f'{SCHEME}{PACKAGE}/models/calibration.json'  # the auto strategy's table


def share_dir(package: str = PACKAGE) -> Path:
    """The package's share directory from the ament index; for this package, the source tree
    when it is not installed (a checkout used without `make setup`)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(package))
    except (ImportError, LookupError) as err:  # PackageNotFoundError is a KeyError
        if package != PACKAGE:
            raise FileNotFoundError(f'package {package} is not in the ament index') from err
    return Path(__file__).resolve().parents[2]


def resolve(path: str) -> str:
    """`package://PKG/rel` as the file in PKG's share directory; anything else unchanged."""
    path = str(path)
    if not path.startswith(SCHEME):
        return path
    package, _, rel = path[len(SCHEME):].partition('/')
    return str(share_dir(package) / rel)
