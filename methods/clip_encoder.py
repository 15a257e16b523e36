"""open_clip encoders: image tower (embedding + five feature levels) and text tower.

``build_open_clip(arch, source)`` accepts CLIP weights however a user has them:
- a file, recognised by its content (:func:`weights_format`): OpenAI's released TorchScript
  archives (``ViT-B-32.pt``, fp16), open_clip checkpoints (``.bin`` / ``.pt`` torch state dicts,
  also with ``state_dict`` / ``module.`` wrapping) and safetensors;
- an open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``...): OpenAI's file in the CLIP
  folder (``$BACKLIT_BENCH_CLIP_DIR``, default ``~/.cache/clip``, where OpenAI's ``clip.load`` and
  open_clip keep it), else open_clip's download or Hugging Face cache;
- ``clip:hf-hub:<org/repo>``: an open_clip repository in the Hugging Face cache.
Offline and not found, the error names the file and the folder to place it in.

OpenAI weights were trained with QuickGELU: a plain arch name (``ViT-B-32``) with OpenAI weights
would run GELU, so QuickGELU is forced (with a warning).

Precision: ``fp32``, or ``fp16`` as OpenAI's ``clip.load`` leaves a model on CUDA (convolutions,
linear and attention weights in fp16, norms in fp32; open_clip's ``precision="fp16"``).

Feature levels: ModifiedResNet (RN50/RN101...): stem after avg-pool, layer1..layer4, by calling
the submodules. ViT: the token outputs of five evenly spaced transformer blocks (forward hooks).

Text: prompts are given as token-embedding sequences; the text transformer is causal and read at
the EOT position, so only positions up to EOT matter and sequences are run truncated there
(exactly the same output, much cheaper).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from methods.encoder_base import N_LEVELS, Encoder, EncoderUnavailable

TINY_NAME = "tiny-clip-random"
TINY_SEED = 0
TINY_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}
TINY_CONFIG = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 5, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": TINY_TEXT,
}
# Tiny architectures in OpenAI's layout (heads = width / 64, as OpenAI's model.py infers them), for
# the test fixtures that stand in for OpenAI's ViT-B-32.pt and RN101.pt (tests/fixtures_clip.py).
TINY_OPENAI_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}
TINY_ARCHS = {
    TINY_NAME: TINY_CONFIG,
    "tiny-openai-vit": {"embed_dim": 32, "quick_gelu": True, "text_cfg": TINY_OPENAI_TEXT,
                        "vision_cfg": {"image_size": 32, "layers": 5, "width": 64, "patch_size": 8}},
    "tiny-openai-rn": {"embed_dim": 32, "quick_gelu": True, "text_cfg": TINY_OPENAI_TEXT,
                       "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16}},
}
CLIP_DIR_ENV = "BACKLIT_BENCH_CLIP_DIR"
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # ints in OpenAI's archives
VOCABULARY_MODES = ("decoded-text", "token-ids")
_TINY_DIR: tempfile.TemporaryDirectory | None = None


class OpenClipEncoder(Encoder):
    """A frozen open_clip CLIP model: image embedding, feature levels, text encoding."""

    has_text = True

    def __init__(self, name: str, model: nn.Module, tokenizer, weights_sha256: str | None, is_random: bool = False) -> None:
        import open_clip

        visual = model.visual
        size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        embed_dim = model.text_projection.shape[1] if isinstance(model.text_projection, torch.Tensor) else model.text_projection.out_features
        super().__init__(name, embed_dim, size, tuple(mean), tuple(std), weights_sha256, is_random)
        self.model = model
        self.tokenizer = tokenizer
        self.compute_dtype = visual.conv1.weight.dtype
        self._captured: list[torch.Tensor] | None = None
        if hasattr(visual, "layer4"):
            self._levels = "resnet"
        else:
            blocks = visual.transformer.resblocks
            picks = sorted({round((k + 1) * len(blocks) / N_LEVELS) - 1 for k in range(N_LEVELS)})
            if len(picks) != N_LEVELS:
                raise EncoderUnavailable(f"{name}: a ViT needs at least {N_LEVELS} blocks for the identity features")
            for i in picks:
                blocks[i].register_forward_hook(self._capture)
            self._levels = "vit"

    def _capture(self, _module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if self._captured is not None:
            batch_first = getattr(self.model.visual.transformer, "batch_first", True)
            self._captured.append(output if batch_first else output.transpose(0, 1))

    def encode(self, x: torch.Tensor, features: bool) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        visual = self.model.visual
        if self._levels == "resnet":
            feats = [visual.stem(x)]
            for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
                feats.append(layer(feats[-1]))
            return visual.attnpool(feats[-1]), feats if features else None
        self._captured = [] if features else None
        try:
            emb = visual(x)
            return emb, self._captured
        finally:
            self._captured = None

    # --- text tower -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.model.vocab_size)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts).to(self.mean.device)

    def eot_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Position of the end-of-text token (the largest id) in each row."""
        return tokens.argmax(dim=-1)

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.token_embedding(tokens)

    def encode_embeddings(self, emb: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Text features (N x D, unnormalised, fp32) of token-embedding sequences (N x L x W), L <= context.

        Rows are read at ``eot``; the causal mask makes positions after it irrelevant.
        """
        m = self.model
        n = emb.shape[1]
        mask = m.attn_mask[:n, :n] if m.attn_mask is not None else None
        dtype = m.transformer.get_cast_dtype()
        h = m.transformer((emb + m.positional_embedding[:n].to(emb.dtype)).to(dtype), attn_mask=mask)
        h = m.ln_final(h)[torch.arange(h.shape[0], device=h.device), eot]
        out = m.text_projection(h) if isinstance(m.text_projection, nn.Linear) else h @ m.text_projection
        return out.float()

    @torch.no_grad()
    def encode_tokens(self, tokens: torch.Tensor, batch: int = 2048, normalize: bool = True) -> torch.Tensor:
        """Text features of token rows (L2-normalised unless ``normalize`` is False), in batches,
        each truncated after its EOT."""
        out = []
        for chunk in tokens.split(batch):
            eot = self.eot_index(chunk)
            chunk = chunk[:, : int(eot.max()) + 1]
            out.append(self.encode_embeddings(self.token_embeddings(chunk), eot))
        feats = torch.cat(out)
        return torch.nn.functional.normalize(feats, dim=-1) if normalize else feats

    def vocabulary(self, mode: str = "decoded-text") -> list[str]:
        """RAVE-shifted's vocabulary as text labels, one per row of :meth:`vocabulary_tokens`.

        ``decoded-text`` (upstream): every id 0..V-1 decoded to text (SOT and EOT included, as their
        marker strings), de-duplicated by text, first occurrence first. ``token-ids``: every id
        except SOT and EOT, labelled by its decoded text.
        """
        if mode == "decoded-text":
            return list(dict.fromkeys(self.tokenizer.decode([i]) for i in range(self.vocab_size)))
        if mode == "token-ids":
            return [self.decode_token(i) for i in self.vocabulary_ids().tolist()]
        raise ValueError(f"vocabulary must be one of {', '.join(VOCABULARY_MODES)}, got {mode!r}")

    def vocabulary_tokens(self, mode: str = "decoded-text") -> torch.Tensor:
        """Token rows of the vocabulary prompts: ``decoded-text`` re-tokenises each decoded text
        (upstream's ``clip.tokenize(tokenizer.decode([i]))``); ``token-ids`` is ``[SOT, t, EOT]``."""
        if mode == "decoded-text":
            return self.tokenize(self.vocabulary(mode))
        if mode != "token-ids":
            raise ValueError(f"vocabulary must be one of {', '.join(VOCABULARY_MODES)}, got {mode!r}")
        ids = self.vocabulary_ids()
        sot, eot = self.tokenizer.sot_token_id, self.tokenizer.eot_token_id
        return torch.stack([torch.full_like(ids, sot), ids, torch.full_like(ids, eot)], dim=1)

    def vocabulary_ids(self) -> torch.Tensor:
        """Every BPE token id except the start/end-of-text tokens."""
        ids = torch.arange(self.vocab_size, device=self.mean.device)
        return ids[(ids != self.tokenizer.sot_token_id) & (ids != self.tokenizer.eot_token_id)]

    def decode_token(self, token_id: int) -> str:
        return self.tokenizer.decode([int(token_id)]).strip()


# --- weights files ------------------------------------------------------------------------------
def weights_format(path: Path) -> str:
    """``torchscript`` (a zip with TorchScript ``constants.pkl`` and ``code/``: OpenAI's releases),
    ``safetensors`` (8-byte header length, then a JSON header) or ``torch`` (a pickled or zipped
    ``torch.save`` state dict), judged by content, not by the file name."""
    with open(path, "rb") as f:
        head = f.read(9)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        is_jit = any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in names) and any("/code/" in n for n in names)
        return "torchscript" if is_jit else "torch"
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol marker of legacy torch.save files
        return "torch"
    raise EncoderUnavailable(f"{path}: not a CLIP weights file (neither a TorchScript archive, safetensors "
                             "nor a torch state dict)")


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a weights file (CPU, as stored) and its format."""
    fmt = weights_format(path)
    try:
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, still the only reader
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        elif fmt == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except EncoderUnavailable:
        raise
    except Exception as exc:
        raise EncoderUnavailable(f"{path}: cannot read this {fmt} weights file ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise EncoderUnavailable(f"{path}: holds no state dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state), fmt


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Load ``state`` into ``model`` (strict; dtypes cast to the model's), with open_clip's own
    conversions; a mismatch names the file, the architecture and the first differing keys."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict

    state = convert_state_dict(model, {k: v for k, v in state.items() if k not in OPENAI_EXTRA_KEYS})
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    expected = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    state = {k: v for k, v in state.items() if k in expected or k not in buffers}  # e.g. a scripted attn_mask
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{'...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes:", sorted(wrong)))
                 if keys]
        raise EncoderUnavailable(f"{path}: these weights do not fit open_clip architecture {arch} ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)


# --- locating weights ---------------------------------------------------------------------------
def clip_dir() -> Path:
    """Where OpenAI's released files are looked up by name: ``$BACKLIT_BENCH_CLIP_DIR`` or ``~/.cache/clip``."""
    return Path(os.environ.get(CLIP_DIR_ENV) or Path.home() / ".cache" / "clip").expanduser()


def hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hf_repo_folder(repo: str) -> Path:
    return hf_cache_dir() / ("models--" + repo.strip("/").replace("/", "--"))


def _openai_filename(arch: str) -> str | None:
    import open_clip

    base = arch.removesuffix("-quickgelu")
    for name in (arch, base):
        cfg = open_clip.get_pretrained_cfg(name, "openai")
        if cfg and cfg.get("url"):
            return Path(cfg["url"]).name
    return None


def needs_quickgelu(arch: str, tag: str, fmt: str | None = None) -> bool:
    """True when ``tag``'s weights were trained with QuickGELU but ``arch``'s config runs GELU.

    A local file counts as OpenAI's when it has OpenAI's file name or is a TorchScript archive
    (``fmt``), OpenAI's release format."""
    import open_clip

    model_cfg = open_clip.get_model_config(arch) or {}
    if model_cfg.get("quick_gelu", False):
        return False
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if cfg:
        return bool(cfg.get("quick_gelu", False))
    return fmt == "torchscript" or Path(tag).name == _openai_filename(arch)


def register_tiny_configs() -> None:
    """Register the tiny test architectures (:data:`TINY_ARCHS`) with open_clip (its API takes
    config files; they stay in one temporary folder for the life of the process)."""
    global _TINY_DIR
    import open_clip

    if all(open_clip.get_model_config(n) is not None for n in TINY_ARCHS):
        return
    _TINY_DIR = tempfile.TemporaryDirectory(prefix="backlit-bench-clip-configs-")
    for name, cfg in TINY_ARCHS.items():
        (Path(_TINY_DIR.name) / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(_TINY_DIR.name)


def _check_arch(arch: str) -> None:
    import open_clip

    if arch in TINY_ARCHS:
        register_tiny_configs()
    if arch not in open_clip.list_models():
        from backlit_core.registry import UnknownNameError, unknown_name_message

        raise UnknownNameError(unknown_name_message("open_clip architecture", arch, open_clip.list_models()))


def resolve_checkpoint(arch: str, tag: str) -> Path:
    """The weights file for ``tag``: a local path, OpenAI's file in :func:`clip_dir`, or open_clip's
    download / Hugging Face cache. Raises EncoderUnavailable naming what to place where."""
    import open_clip

    _check_arch(arch)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        path = Path(tag).expanduser()
        if path.is_file():
            return path
        known = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        openai = _openai_filename(arch)
        hint = f" (OpenAI's file for {arch} is {openai})" if openai else ""
        raise EncoderUnavailable(f"clip:{arch}:{tag}: no such file {path}{hint}; pass a local weights file or a "
                                 f"known tag of {arch}: {known}")
    url = cfg.get("url") or ""
    fname = Path(url).name if url else None
    if fname and (clip_dir() / fname).is_file():
        return clip_dir() / fname
    try:
        return Path(open_clip.download_pretrained(cfg))
    except Exception as exc:
        hub = "/".join(cfg.get("hf_hub", "").split("/")[:2])  # org/repo[/file]
        where = []
        if fname:
            where.append(f"place {fname}{f' (from {url})' if url else ''} in {clip_dir()} (or set ${CLIP_DIR_ENV}, "
                         f"or pass its path: clip:{arch}:/path/to/{fname})")
        if hub:
            where.append(f"put the Hugging Face repo {hub} into the HF cache ({_hf_repo_folder(hub)})")
        raise EncoderUnavailable(
            f"clip:{arch}:{tag}: weights not found offline and cannot be downloaded ({type(exc).__name__}); "
            + "; or ".join(where or ["pass a local weights file as the tag"])) from exc


def _hf_hub_files(repo: str) -> tuple[Path, Path]:
    """(open_clip_config.json, weights file) of an open_clip repo, from the HF cache or the Hub."""
    from open_clip.pretrained import download_pretrained_from_hf

    try:
        config = Path(download_pretrained_from_hf(repo, filename="open_clip_config.json"))
        return config, Path(download_pretrained_from_hf(repo))
    except Exception as exc:
        raise EncoderUnavailable(
            f"clip:hf-hub:{repo}: open_clip_config.json and open_clip_pytorch_model.bin (or .safetensors) not in the "
            f"Hugging Face cache and cannot be downloaded ({type(exc).__name__}); put the repo into "
            f"{_hf_repo_folder(repo)} (e.g. huggingface-cli download {repo} on a machine online, then copy "
            "the cache)") from exc


@contextlib.contextmanager
def _quiet_random_init() -> Iterator[None]:
    """Drop open_clip's root-logger warning that a model was created without weights."""

    def keep(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def build_open_clip(arch: str, tag: str, precision: str = "fp32") -> OpenClipEncoder:
    """The encoder ``clip:<arch>:<tag>`` (``arch`` = ``hf-hub`` for ``clip:hf-hub:<org/repo>``)."""
    import open_clip

    from backlit_core.hashing import sha256_of

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"CLIP precision must be fp32 or fp16, got {precision!r}")
    if arch == "hf-hub":
        _, path = _hf_hub_files(tag)
        model_name, force = f"hf-hub:{tag}", False
        state, _ = read_state_dict(path)
    else:
        path = resolve_checkpoint(arch, tag)
        state, fmt = read_state_dict(path)
        model_name, force = arch, needs_quickgelu(arch, tag, fmt)
        if force:
            warnings.warn(f"clip:{arch}:{tag}: these weights use QuickGELU; forcing it (use {arch}-quickgelu to "
                          "silence)", stacklevel=2)
    with _quiet_random_init():  # the weights are loaded right after
        model = open_clip.create_model(model_name, load_weights=False, force_quick_gelu=force, precision=precision)
    load_weights(model, state, path, model_name)
    return OpenClipEncoder(f"clip:{arch}:{tag}", model.eval(), open_clip.get_tokenizer(model_name), sha256_of(path))


def build_tiny_clip_random() -> OpenClipEncoder:
    """A tiny CLIP with random weights seeded by ``TINY_SEED``: for tests only (``is_random``)."""
    import open_clip

    register_tiny_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        with _quiet_random_init():
            model = open_clip.create_model(TINY_NAME, pretrained=None, precision="fp32")
    return OpenClipEncoder(TINY_NAME, model, open_clip.get_tokenizer(TINY_NAME), None, is_random=True)
