"""Stand-ins for the paper profile's downloads, built at test time: a dataset mirror.

:func:`build_paper_mirror` writes one folder per raw folder (source group) of the cards baid,
backlit300, div2k, lsrw-huawei and lsrw-nikon, as ``$BACKLIT_BENCH_MIRROR`` expects them
(:mod:`benchmark.data.mirror`): the group's archives plus a ``SHA256SUMS`` listing them. Each
archive has the upstream archive type, folder layout and file naming, with a few small images:

- ``clip-lit-test/test_data.zip``: CLIP-LIT's test folder (Google Drive): ``test_data/BAID/test/
  resize_input`` and ``resize_gt`` (``0001.JPG``...; one duplicate copy ``0002(2).png``, as in the
  release) and ``test_data/Backlit300`` (web photos of mixed sizes, no ground truth);
- ``rave-baid/BAID.zip``: RAVE's BAID folder: ``BAID/train/{backlit,welllit}`` and ``BAID/test/...``;
- ``rave-div2k/DIV2K.zip``: RAVE's DIV2K folder, ``DIV2K/0001.png``...;
- ``div2k/DIV2K_train_HR.zip``: the official archive, ``DIV2K_train_HR/0001.png``...;
- ``lsrw/LSRW.zip``: ``LSRW/Training data/{Huawei,Nikon}/{low,high}`` and ``LSRW/Eval/...``;
- ``weights/<file>``: every released enhancer's file name (``rave_paired.pth``, ``Epoch99.pth``...)
  holding a randomly initialised network of its kind, saved as upstream did (RAVE's with
  DataParallel's ``module.`` prefix).

The Drive folders are served zipped (a mirror serves files); their inner folder names are those
the cards infer from the authors' code (see the cards' notes). Importable without pytest.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (48, 64)  # height, width of most fixture images


def _scene(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A smooth well-lit colour scene in [0, 1] (gradient, blobs and a little texture)."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.3 * np.sin(6 * x * rng.uniform(0.5, 2) + rng.uniform(0, 6)) * np.cos(4 * y + c)
                    for c in range(3)], axis=-1)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, 1, 3) * (h / max(h, w), w / max(h, w), 0.3)
        img += 0.25 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (r * r + 1e-3))[..., None] * rng.uniform(-1, 1, 3)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


def _backlit(scene: np.ndarray) -> np.ndarray:
    """The scene with a dark foreground against a bright sky (upper part)."""
    h = scene.shape[0]
    sky = (np.arange(h) < h // 3)[:, None, None]
    return np.where(sky, np.clip(scene * 0.4 + 0.6, 0, 1), scene ** 2.2 * 0.35)


def _encode(img: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((img * 255).round().astype(np.uint8)).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _fmt(name: str) -> str:
    return "PNG" if name.lower().endswith(".png") else "JPEG"


def _pairs(rng: np.random.Generator, folder_in: str, folder_gt: str, names: list[str],
           size: tuple[int, int] = SIZE) -> dict[str, bytes]:
    out = {}
    for name in names:
        scene = _scene(rng, size)
        out[f"{folder_in}/{name}"] = _encode(_backlit(scene), _fmt(name))
        out[f"{folder_gt}/{name}"] = _encode(scene, _fmt(name))
    return out


def _singles(rng: np.random.Generator, folder: str, names: list[str], sizes: list[tuple[int, int]],
             backlit: bool) -> dict[str, bytes]:
    out = {}
    for name, size in zip(names, sizes):
        scene = _scene(rng, size)
        out[f"{folder}/{name}"] = _encode(_backlit(scene) if backlit else scene, _fmt(name))
    return out


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(2023, 1, 1, 0, 0, 0))  # fixed: the same bytes every time
            zf.writestr(info, members[name])
    return buf.getvalue()


def paper_archives(n_train: int = 4, n_test: int = 2, seed: int = 0) -> dict[str, dict[str, bytes]]:
    """group -> {archive file name: bytes} for every raw folder of the paper profile's cards (+ div2k)."""
    rng = np.random.default_rng(seed)
    num = [f"{i:04d}" for i in range(1, max(n_train, n_test) + 1)]
    test = _pairs(rng, "test_data/BAID/test/resize_input", "test_data/BAID/test/resize_gt",
                  [f"{s}.JPG" for s in num[:n_test]])
    dup = f"test_data/BAID/test/resize_input/{num[n_test - 1]}.JPG"
    test[dup.replace(".JPG", "(2).png")] = _encode(np.asarray(Image.open(io.BytesIO(test[dup]))) / 255.0, "PNG")
    test |= _singles(rng, "test_data/Backlit300", [f"pexels-photo-{1000 + i}.jpg" for i in range(n_test)],
                     [SIZE, (SIZE[1], SIZE[0])] * n_test, backlit=True)
    baid = _pairs(rng, "BAID/train/backlit", "BAID/train/welllit", [f"{s}.JPG" for s in num[:n_train]])
    baid |= _pairs(rng, "BAID/test/backlit", "BAID/test/welllit", [f"{s}.JPG" for s in num[:n_test]])
    pngs = [f"{s}.png" for s in num[:n_train]]
    lsrw: dict[str, bytes] = {}
    for camera in ("Huawei", "Nikon"):
        lsrw |= _pairs(rng, f"LSRW/Training data/{camera}/low", f"LSRW/Training data/{camera}/high",
                       [f"{i}.jpg" for i in range(1, n_train + 1)])
        lsrw |= _pairs(rng, f"LSRW/Eval/{camera}/low", f"LSRW/Eval/{camera}/high",
                       [f"{i}.jpg" for i in range(1, n_test + 1)])
    return {
        "clip-lit-test": {"test_data.zip": _zip(test)},
        "rave-baid": {"BAID.zip": _zip(baid)},
        "rave-div2k": {"DIV2K.zip": _zip(_singles(rng, "DIV2K", pngs, [SIZE] * n_train, backlit=False))},
        "div2k": {"DIV2K_train_HR.zip": _zip(_singles(rng, "DIV2K_train_HR", pngs, [SIZE] * n_train, backlit=False))},
        "lsrw": {"LSRW.zip": _zip(lsrw)},
    }


def released_weights(seed: int = 0) -> dict[str, bytes]:
    """Released file name -> a state dict of the same network with seeded random weights."""
    import torch

    from benchmark.weights import RELEASED
    from methods.network import EnhanceNet
    from methods.zero_dce import ZeroDCENet

    out = {}
    with torch.random.fork_rng(devices=[]):
        for i, w in enumerate(sorted(RELEASED.values(), key=lambda w: w.name)):
            torch.manual_seed(seed + i)
            net = ZeroDCENet() if w.network == "zero-dce" else EnhanceNet("zeros")
            prefix = "module." if w.repo == "Atmyre/RAVE" else ""
            buf = io.BytesIO()
            torch.save({prefix + k: v for k, v in net.state_dict().items()}, buf)
            out[w.filename] = buf.getvalue()
    return out


def listing(files: dict[str, bytes]) -> bytes:
    """``SHA256SUMS`` text of ``files`` (``sha256sum`` format)."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())).encode()


def mirror_files(**kwargs: int) -> dict[str, bytes]:
    """URL path -> bytes of the whole mirror (``/<group>/<file>`` and ``/<group>/SHA256SUMS``)."""
    out = {}
    for group, files in {**paper_archives(**kwargs), "weights": released_weights()}.items():
        out |= {f"/{group}/{name}": data for name, data in files.items()}
        out[f"/{group}/SHA256SUMS"] = listing(files)
    return out


def build_paper_mirror(root: str | Path, **kwargs: int) -> Path:
    """Write the mirror under ``root`` (serve it with any static HTTP server); return ``root``."""
    root = Path(root)
    for path, data in mirror_files(**kwargs).items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_bytes(data)
    return root
