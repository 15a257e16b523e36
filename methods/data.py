"""Training data: preloaded image sets, batch order as a pure function of (seed, iteration), and
the on-disk cache of reference embeddings (keyed by file contents and encoder weights)."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backlit_core.atomic import save_torch
from backlit_core.image_io import list_images, load_image
from methods.method_parameters import Parameter

CACHE_VERSION = 1
REF_PREPROCESS = Parameter(
    "ref_preprocess", "center-crop", str, "reference embeddings of the original files: CLIP's standard resize + "
    "centre crop (upstream) or the training-time full-frame resize", choices=("center-crop", "resize"))


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(stable_seed(*parts))


def batch_indices(n: int, batch: int, seed: int, stream: str, iteration: int) -> torch.Tensor:
    """Indices of batch ``iteration`` when cycling through epochs of ``n`` items, each freshly shuffled."""
    pos = torch.arange(iteration * batch, (iteration + 1) * batch)
    epochs, offsets = pos // n, pos % n
    perms = {int(e): torch.randperm(n, generator=generator(seed, stream, int(e))) for e in epochs.unique()}
    return torch.stack([perms[int(e)][o] for e, o in zip(epochs, offsets)])


def image_paths(folder: str | Path) -> list[Path]:
    paths = list_images(folder)
    if not paths:
        raise FileNotFoundError(f"{folder}: no images found")
    return paths


RESIZE_FILTERS = ("lanczos", "bilinear")


def resize_square(img: torch.Tensor, size: int, filter: str = "bilinear") -> torch.Tensor:
    """Full-frame resize of a 3 x H x W image to ``size`` x ``size`` (upstream resizes to 512 x 512).

    ``lanczos``: PIL's Lanczos on the 8-bit image, as upstream's ``Image.resize(..., ANTIALIAS)``;
    ``bilinear``: antialiased bilinear in torch on the float image.
    """
    if filter == "bilinear":
        return F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    if filter != "lanczos":
        raise ValueError(f"resize filter must be one of {', '.join(RESIZE_FILTERS)}, got {filter!r}")
    from PIL import Image

    pil = Image.fromarray(to_uint8(img).permute(1, 2, 0).numpy()).resize((size, size), Image.LANCZOS)
    return to_float(torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1))


def preload(paths: Sequence[Path], size: int, filter: str = "bilinear") -> torch.Tensor:
    """All images, resized to ``size``², as one N x 3 x size x size uint8 tensor (a quarter of fp32)."""
    return torch.stack([to_uint8(resize_square(load_image(p), size, filter)) for p in paths])


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


def files_digest(paths: Sequence[Path]) -> str:
    """sha256 over the names and contents of ``paths``."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode())
        h.update(hashlib.sha256(Path(p).read_bytes()).digest())
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("BACKLIT_BENCH_CACHE", Path.home() / ".cache" / "backlit_bench")) / "embeddings"


def cached_tensor(key: dict, compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, str]:
    """Load the tensor stored under ``key`` or compute and store it; returns (tensor, key hash).

    The key includes the CPU numerics mode (:mod:`backlit_core.numerics`): a tensor computed under
    the other mode is not reused. (The cache is per machine; ``native`` results differ between CPU kinds.)
    """
    from backlit_core import numerics

    key = {**key, "v": CACHE_VERSION, "numerics": numerics.mode()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    path = cache_dir() / f"{digest}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True), digest
        except Exception:  # noqa: BLE001 - a corrupt cache entry is recomputed
            path.unlink(missing_ok=True)
    value = compute().detach().cpu()
    save_torch(path, value)
    return value, digest


def center_crop_preprocess(img: torch.Tensor, size: int) -> torch.Tensor:
    """CLIP's standard preprocessing geometry: shorter side to ``size`` (bicubic), centre crop."""
    h, w = img.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = F.interpolate(img[None], size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return img[0, :, top:top + size, left:left + size]


def reference_embeddings(encoder, paths: Sequence[Path], mode: str = "center-crop",
                         batch: int = 32) -> tuple[torch.Tensor, str]:
    """Normalised embeddings (N x D, CPU) of the original files, cached on disk.

    ``mode``: ``center-crop`` (RAVE's reference preprocessing: CLIP's standard resize + centre
    crop) or ``resize`` (the training-time full-frame resize).
    """
    if mode not in ("center-crop", "resize"):
        raise ValueError(f"reference preprocessing must be 'center-crop' or 'resize', got {mode!r}")
    key = {"kind": "reference", "files": files_digest(paths), "encoder": encoder.fingerprint, "mode": mode}

    @torch.no_grad()
    def compute() -> torch.Tensor:
        out = []
        for i in range(0, len(paths), batch):
            imgs = [load_image(p) for p in paths[i:i + batch]]
            if mode == "center-crop":
                x = torch.stack([center_crop_preprocess(im, encoder.input_size) for im in imgs])
            else:
                x = torch.stack([resize_square(im, encoder.input_size) for im in imgs])
            out.append(encoder(x.to(encoder.mean.device)).embedding)
        return torch.cat(out)

    return cached_tensor(key, compute)


def vocabulary_embeddings(encoder, mode: str = "decoded-text") -> tuple[list[str], torch.Tensor, str]:
    """RAVE-shifted's vocabulary: labels, one-token text features (V x D, *not* normalised, as
    upstream weights them) and the cache key; the features are cached on disk.

    ``mode`` (see :meth:`methods.clip_encoder.OpenClipEncoder.vocabulary`): ``decoded-text``
    (upstream) or ``token-ids``.
    """
    labels = encoder.vocabulary(mode)
    key = {"kind": "vocabulary", "encoder": encoder.fingerprint, "mode": mode, "features": "raw"}
    emb, digest = cached_tensor(key, lambda: encoder.encode_tokens(encoder.vocabulary_tokens(mode), normalize=False))
    if emb.shape[0] != len(labels):
        raise RuntimeError(f"vocabulary cache entry {digest}: {emb.shape[0]} rows for {len(labels)} entries")
    return labels, emb, digest
