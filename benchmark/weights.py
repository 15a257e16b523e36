"""The released enhancers: names, pinned upstream URLs, checksums, cache and download.

Nine hold the shared network (CLIP-LIT, latent-prompt, RAVE); ``zero-dce`` holds the Zero-DCE
baseline's (``network``: which one, :mod:`methods.enhancer_api` loads either).

Each name says method and regime; :data:`ALIASES` adds the names the papers use (``rave`` is the
unpaired RAVE model). ``resolve_weights`` accepts a released name or alias, a checkpoint file, or a
training run directory. Released files are looked up, in order, in the cache
(``$BACKLIT_BENCH_WEIGHTS``, default ``~/.cache/backlit_bench/weights``), in local mirror folders
(``$BACKLIT_BENCH_WEIGHTS_MIRRORS``, ``os.pathsep``-separated, plus ``checkpoints`` of the reference
data, ``$BACKLIT_BENCH_REFERENCE``, default ``../shared/reference``, when it exists), and finally
downloaded: from upstream, or from ``$BACKLIT_BENCH_MIRROR/weights/`` when that mirror is set
(:mod:`benchmark.data.mirror`). Every file is sha256-verified before use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from backlit_core.hashing import sha256_of
from backlit_core.paths import REFERENCE_DIR
from backlit_core.registry import UnknownNameError, unknown_name_message

CLIP_LIT_COMMIT = "25ed5be6086cd34d2bc1020c6088ac3f9d3a9522"
RAVE_COMMIT = "a207067663394491f9dea6db9c9fc87333d004a9"
ZERO_DCE_COMMIT = "e0f4adc54d0f23348c4a9b84acc08fe8778d5bfd"


@dataclass(frozen=True)
class ReleasedWeights:
    name: str
    method: str  # clip-lit | latent-prompt | rave | rave-shifted | zero-dce
    regime: str  # paper | init | paired | unpaired
    repo: str
    commit: str
    path: str  # path inside the upstream repository
    md5: str
    sha256: str
    size: int
    note: str
    network: str = "enhance-net"  # enhance-net (methods/network.py) | zero-dce (methods/zero_dce.py)

    @property
    def filename(self) -> str:
        return Path(self.path).name

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


def _clip_lit(name: str, regime: str, path: str, md5: str, sha: str, note: str) -> ReleasedWeights:
    return ReleasedWeights(name, "clip-lit", regime, "ZhexinLiang/CLIP-LIT", CLIP_LIT_COMMIT, path, md5, sha, 1_126_923, note)


def _rave(name: str, method: str, regime: str, file: str, md5: str, sha: str, size: int) -> ReleasedWeights:
    return ReleasedWeights(name, method, regime, "Atmyre/RAVE", RAVE_COMMIT, f"pretrained_models/{file}", md5, sha, size,
                           f"retrained by the RAVE authors ({regime} regime)")


RELEASED: dict[str, ReleasedWeights] = {
    w.name: w
    for w in [
        _clip_lit("clip-lit", "paper", "pretrained_models/enhancement_model.pth", "02065050967907868c5b5a2d2dc0ecdd",
                  "67aa1bdbac345842670e494b02953f299e5088bcb3f98a18bd60b06fef48b5c9", "the CLIP-LIT paper's model"),
        _clip_lit("clip-lit-init", "init", "pretrained_models/init_pretrained_models/init_enhancement_model.pth",
                  "aae79e99b3eba53955ee6016fce3c381", "14c32e3163e7e10734b48b9641ba44222daaf2feb0f3ba76cbb15b4080be25ab",
                  "after the reconstruction warm-up (near identity)"),
        _rave("clip-lit-paired", "clip-lit", "paired", "clip_lit_paired.pth", "8b2feac69b5c134efdc88acd10192304",
              "5c3e14b3674d516190e77e54614476fe19ac91b9d8419c0c25533e573ff65d2d", 1_127_691),
        _rave("clip-lit-unpaired", "clip-lit", "unpaired", "clip_lit_unpaired.pth", "4fd2644ce6ddbf68fc6cb97c62cb0aea",
              "7b16e3815c1380138ada75ca5000f818db4462c27f4522a1de46023d96c09d0d", 1_127_723),
        _rave("latent-prompt-paired", "latent-prompt", "paired", "clip_lit_latent_paired.pth",
              "a2c7ed36988a97a564f67ad5066cec72", "8bc9d8882837dbee3d266f4407478f63220174cd5838fbcadf2f4b2c070146ec", 1_127_723),
        _rave("latent-prompt-unpaired", "latent-prompt", "unpaired", "clip_lit_latent_unpaired.pth",
              "c64d88fe54673594a7ccc01748573eb5", "931966b5cbc3320d90a62c9ee7c820e0d291d7abfb85989b8296458e2354f94e", 1_127_723),
        _rave("rave-paired", "rave", "paired", "rave_paired.pth", "1bb03ddbe6043af26f6b496e4568a31d",
              "3d4e27eecbde9b55d2ef96afadc8cf4c2d0927fb8780ce1df6508d01a7ef811f", 1_127_691),
        _rave("rave-unpaired", "rave", "unpaired", "rave_unpaired.pth", "9f5c48a70d217c2614727f91fe15cf08",
              "21fb43004af7de2e1782b5799fbaa91dc62ca2730134229323bceab53370742c", 1_127_691),
        _rave("rave-unpaired-shifted", "rave-shifted", "unpaired", "rave_unpaired_shifted.pth",
              "d2b63a4de666200980bc3923b5bc7940", "5bcf3feff7dcc4891be878721c2defba0305e343c6b3821f9e88a9950c06ae5e", 1_128_144),
        ReleasedWeights("zero-dce", "zero-dce", "paper", "Li-Chongyi/Zero-DCE", ZERO_DCE_COMMIT,
                        "Zero-DCE_code/snapshots/Epoch99.pth", "71c1cf0487ac10ecfc3bcf09602ad0dc",
                        "a4395acb874f320375d9704997cef874eaaaaa26a1777ceb29a92b70f74c3612", 320_017,
                        "the Zero-DCE paper's model (Guo et al., CVPR 2020; a non-CLIP baseline)", "zero-dce"),
    ]
}


# the name a paper gives a model -> its released name (the unpaired regime is each paper's own setting)
ALIASES: dict[str, str] = {"rave": "rave-unpaired", "latent-prompt": "latent-prompt-unpaired"}


def released(name: str) -> ReleasedWeights:
    """The released weights of ``name`` or its alias; :class:`UnknownNameError` lists the valid names."""
    w = RELEASED.get(ALIASES.get(name, name))
    if w is None:
        raise UnknownNameError(unknown_name_message("released weights", name, [*RELEASED, *ALIASES]))
    return w


def aliases_of(name: str) -> list[str]:
    return [a for a, n in ALIASES.items() if n == name]


class WeightsUnavailable(RuntimeError):
    """A released checkpoint is neither cached nor downloadable; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("BACKLIT_BENCH_WEIGHTS", Path.home() / ".cache" / "backlit_bench" / "weights"))


def mirror_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("BACKLIT_BENCH_WEIGHTS_MIRRORS", "").split(os.pathsep) if p]
    dirs.append(REFERENCE_DIR / "checkpoints")
    return [d for d in dirs if d.is_dir()]


def cached_path(w: ReleasedWeights) -> Path:
    return cache_dir() / w.name / w.filename


def _find_local(w: ReleasedWeights) -> Path | None:
    candidates = [cached_path(w)]
    for d in mirror_dirs():
        candidates += sorted(d.rglob(w.filename))
    for c in candidates:
        if c.is_file() and c.stat().st_size == w.size and sha256_of(c) == w.sha256:
            return c
    return None


def local_weights() -> dict[str, Path]:
    """Released name -> the verified local file, for every released model found without downloading."""
    return {w.name: path for w in RELEASED.values() if (path := _find_local(w)) is not None}


def download(w: ReleasedWeights, timeout: float = 30.0) -> Path:
    """Download ``w`` into the cache (resumable, sha256-verified, retried once on a mismatch)."""
    from benchmark.data.download import fetch_http
    from benchmark.data.errors import ChecksumError, SourceUnavailable
    from benchmark.data.mirror import fetch_listed, mirror_url

    target = cached_path(w)
    mirror = mirror_url()
    made = [d for d in (target.parent, target.parent.parent) if not d.exists()]  # removed again if left empty
    try:
        if mirror:
            fetch_listed(mirror, "weights", w.filename, target, w.sha256, timeout=timeout)
            return target
        return fetch_http(w.url, target, w.sha256, w.size, timeout=timeout)
    except ChecksumError as exc:
        _remove_empty(made)
        raise WeightsUnavailable(str(exc)) from None
    except SourceUnavailable as exc:
        _remove_empty(made)
        raise WeightsUnavailable(
            f"{w.name}: not cached, and {exc}. Place {w.filename} (sha256 {w.sha256}) at {target}, in a folder "
            f"listed in BACKLIT_BENCH_WEIGHTS_MIRRORS or in {REFERENCE_DIR / 'checkpoints'}, or pass its path instead "
            "of the name."
        ) from None


def _remove_empty(folders: list[Path]) -> None:
    for d in folders:  # deepest first
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def resolve_weights(name_or_path: str | Path, allow_download: bool = True) -> Path:
    """A checkpoint path for a released name, a ``.pth`` file, or a training run directory."""
    p = Path(name_or_path)
    if p.is_dir():
        ckpt = p / "enhancer.pth"
        if not ckpt.is_file():
            raise FileNotFoundError(f"{p}: a directory without enhancer.pth (is the training run finished?)")
        return ckpt
    if p.is_file():
        return p
    name = str(name_or_path)
    if ALIASES.get(name, name) not in RELEASED and (any(sep in name for sep in ("/", "\\")) or p.suffix):
        raise FileNotFoundError(f"{name}: no such checkpoint file or directory")
    w = released(name)
    local = _find_local(w)
    if local is not None:
        return local
    if not allow_download:
        raise WeightsUnavailable(f"{w.name}: not found locally; download {w.url} to {cached_path(w)}")
    return download(w)
