"""Image reading and writing for real photos.

Every reader returns an RGB float tensor (3 x H x W) in [0, 1]: EXIF orientation applied;
grayscale replicated; alpha discarded; palette, CMYK and 16-bit PNG/TIFF converted. Errors name
the file and the cause.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from backlit_core.atomic import atomic_path

if TYPE_CHECKING:
    import torch  # imported where used: listing images needs no torch

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
Image.MAX_IMAGE_PIXELS = 400_000_000  # allow very large photos; decompression bombs beyond that


class ImageReadError(RuntimeError):
    """An image file could not be decoded; ``str()`` starts with the file path."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (any case of extension), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def _read_16bit_with_cv2(path: Path) -> np.ndarray | None:
    """Return a float RGB array for 16-bit colour PNG/TIFF (Pillow truncates these to 8 bit)."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        return None
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    else:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return arr.astype(np.float32) / 65535.0


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to a float32 H x W x 3 array in [0, 1]."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
    elif img.mode == "I":
        arr = np.asarray(img, dtype=np.float32)
        arr = arr / (65535.0 if arr.max(initial=0) > 255 else 255.0)
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if arr.max(initial=0) > 1.0:
            arr = arr / 255.0
    else:
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.clip(arr, 0.0, 1.0)


def load_image(path: str | Path) -> torch.Tensor:
    """Read ``path`` as an RGB float tensor (3 x H x W) in [0, 1]; raise :class:`ImageReadError`."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now: a truncated file fails here, not later
                if path.suffix.lower() in {".png", ".tif", ".tiff"} and img.mode in ("RGB", "RGBA", "I;16", "I"):
                    arr16 = _read_16bit_with_cv2(path)
                    if arr16 is not None:
                        return torch.from_numpy(np.ascontiguousarray(arr16.transpose(2, 0, 1)))
                img = ImageOps.exif_transpose(img)
                arr = _pil_to_array(img)
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"cannot decode image ({exc})") from exc
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(path, "image has zero width or height")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def to_uint(img: torch.Tensor, bits: int = 8) -> np.ndarray:
    """3 x H x W float tensor in [0, 1] -> H x W x 3 uint8/uint16 array (round half up)."""
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    maxv = 255 if bits == 8 else 65535
    arr = img.detach().float().cpu().clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.floor(arr * maxv + 0.5).astype(np.uint8 if bits == 8 else np.uint16)


def save_png(img: torch.Tensor, path: str | Path, bits: int = 8) -> Path:
    """Write a 3 x H x W tensor in [0, 1] as an 8- or 16-bit PNG, atomically."""
    path = Path(path)
    arr = to_uint(img, bits)
    with atomic_path(path) as tmp:
        if bits == 8:
            Image.fromarray(arr, "RGB").save(tmp, format="PNG")
        else:
            import cv2

            if not cv2.imwrite(str(tmp), np.ascontiguousarray(arr[..., ::-1])):
                raise OSError(f"{path}: could not write 16-bit PNG")
    return path
