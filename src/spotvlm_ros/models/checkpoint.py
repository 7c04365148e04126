"""Turn a model argument (a local folder or a hub id) into a local checkpoint folder.

Loading never waits on a network by default: a hub id must already be in the local
Hugging Face cache unless the caller allows a download, so a robot without network fails
at once with a message that names what was asked for.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from spotvlm_ros.models.base import ModelLoadError

# owner/name or a bare name, the shapes a hub id can take.
_HUB_ID = re.compile(r'^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$')


def looks_like_path(model: str) -> bool:
    """Whether `model` is meant as a filesystem path rather than a hub id."""
    if os.path.exists(model) or model.startswith(('/', '.', '~')):
        return True
    return not _HUB_ID.match(model)


def check_checkpoint_dir(path: Path) -> Path:
    """Raise ModelLoadError unless `path` is a folder holding a config.json."""
    if not path.exists():
        raise ModelLoadError(f"no checkpoint at '{path}': the path does not exist")
    if not path.is_dir():
        raise ModelLoadError(f"no checkpoint at '{path}': not a folder")
    if not (path / 'config.json').is_file():
        raise ModelLoadError(f"not a checkpoint folder: '{path}' has no config.json")
    return path


def resolve_checkpoint(model: str, allow_download: bool = False) -> Path:
    """Local folder for `model` (a path, `package://PKG/path` or a hub id); ModelLoadError if none."""
    from spotvlm_ros.share import SCHEME, resolve

    if str(model).startswith(SCHEME):
        try:
            model = resolve(model)  # a share file of an installed package
        except FileNotFoundError as err:
            raise ModelLoadError(f"cannot load '{model}': {err}") from None
    model = str(model)
    if looks_like_path(model):
        return check_checkpoint_dir(Path(model).expanduser())
    from huggingface_hub import constants, snapshot_download

    offline = constants.HF_HUB_OFFLINE or not allow_download
    try:
        return check_checkpoint_dir(Path(snapshot_download(model, local_files_only=offline)))
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; all mean "not here"
        if offline:
            why = 'HF_HUB_OFFLINE is set' if constants.HF_HUB_OFFLINE else 'allow_download=False'
            how = f'it is not in the local Hugging Face cache and downloads are off ({why})'
        else:
            how = f'download failed ({type(exc).__name__})'
        raise ModelLoadError(
            f"cannot load hub model '{model}': {how}. Pass a local checkpoint folder, or fetch it "
            f"first where there is network (hf download {model})") from exc
