"""Reading checkpoint files with torch's tensors-only loader; when that fails, our own one-line message
saying what the file is and what it should hold (never torch's text: it advises loading untrusted
files with ``weights_only=False``)."""
from __future__ import annotations

import pickle
import string
import warnings
import zipfile
from pathlib import Path
from typing import Any


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used; ``str()`` is one line naming the file, what it is, what it must hold."""


def describe_file(path: Path) -> str:
    """What ``path`` looks like from its first bytes, and its size (``a zip archive, 1,234 bytes``)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(512)
    if not head:
        kind = "an empty file"
    elif head.startswith(b"PK\x03\x04"):
        kind = _describe_zip(path)
    elif head[:1] == b"\x80" and len(head) > 1 and head[1] <= pickle.HIGHEST_PROTOCOL:
        kind = "a Python pickle that holds more than tensors, numbers and plain containers"
    elif head.startswith(b"\x89HDF"):
        kind = "an HDF5 file (not a PyTorch checkpoint)"
    elif len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        kind = "a safetensors file (convert it with safetensors.torch.load_file and torch.save)"
    elif all(chr(b) in string.printable for b in head):
        kind = "a text file"
    else:
        kind = "data of no known format (random bytes, or a truncated or foreign file)"
    return f"{kind}, {size:,} bytes"


def _describe_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return "a damaged or truncated zip archive"
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "a TorchScript archive (a whole scripted model, not a state dict)"
    if any(n.endswith("/data.pkl") for n in names):
        return "a PyTorch file that holds Python objects besides tensors (only tensors, numbers and plain " \
               "containers are loaded)"
    return "a zip archive that is not a PyTorch file"


def load_tensors(path: str | Path, must_hold: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; :class:`CheckpointError` (naming the file, what it is,
    and ``must_hold``: what a usable file holds) when it cannot be read."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; {must_hold}")
    try:
        with warnings.catch_warnings():  # torch's warnings about odd files ask to file an issue with torch
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch's own text is replaced by ours on purpose
        raise CheckpointError(f"{path}: not a readable checkpoint: {describe_file(path)}; {must_hold}") from None
