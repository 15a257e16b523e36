"""open_clip encoders: image tower (embedding + five feature levels) and text tower.

``build_open_clip(arch, tag)`` loads through open_clip's own download and cache. OpenAI weights
were trained with QuickGELU: a plain arch name (``ViT-B-32``) with ``openai`` weights would run
GELU, so QuickGELU is forced (with a warning). Offline and not cached, the error names the file to
place and how to pass it (a local path as the tag).

Feature levels: ModifiedResNet (RN50/RN101...): stem after avg-pool, layer1..layer4, by calling
the submodules. ViT: the token outputs of five evenly spaced transformer blocks (forward hooks).

Text: prompts are given as token-embedding sequences; the text transformer is causal and read at
the EOT position, so only positions up to EOT matter and sequences are run truncated there
(exactly the same output, much cheaper).
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from methods.encoders import N_LEVELS, Encoder, EncoderUnavailable

TINY_NAME = "tiny-clip-random"
TINY_SEED = 0
TINY_CONFIG = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 5, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


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
        """Text features (N x D, unnormalised) of token-embedding sequences (N x L x W), L <= context.

        Rows are read at ``eot``; the causal mask makes positions after it irrelevant.
        """
        m = self.model
        n = emb.shape[1]
        mask = m.attn_mask[:n, :n] if m.attn_mask is not None else None
        h = m.transformer(emb + m.positional_embedding[:n].to(emb.dtype), attn_mask=mask)
        h = m.ln_final(h)[torch.arange(h.shape[0], device=h.device), eot]
        return m.text_projection(h) if isinstance(m.text_projection, nn.Linear) else h @ m.text_projection

    @torch.no_grad()
    def encode_tokens(self, tokens: torch.Tensor, batch: int = 2048) -> torch.Tensor:
        """L2-normalised text features of token rows, in batches, each truncated after its EOT."""
        out = []
        for chunk in tokens.split(batch):
            eot = self.eot_index(chunk)
            chunk = chunk[:, : int(eot.max()) + 1]
            out.append(self.encode_embeddings(self.token_embeddings(chunk), eot))
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    def vocabulary_ids(self) -> torch.Tensor:
        """Every BPE token id except the start/end-of-text tokens."""
        ids = torch.arange(self.vocab_size, device=self.mean.device)
        return ids[(ids != self.tokenizer.sot_token_id) & (ids != self.tokenizer.eot_token_id)]

    def vocabulary_tokens(self) -> torch.Tensor:
        """One-token prompts ``[SOT, t, EOT]``, one row per :meth:`vocabulary_ids` entry."""
        ids = self.vocabulary_ids()
        sot, eot = self.tokenizer.sot_token_id, self.tokenizer.eot_token_id
        return torch.stack([torch.full_like(ids, sot), ids, torch.full_like(ids, eot)], dim=1)

    def decode_token(self, token_id: int) -> str:
        return self.tokenizer.decode([int(token_id)]).strip()


def _openai_filename(arch: str) -> str | None:
    import open_clip

    base = arch.removesuffix("-quickgelu")
    for name in (arch, base):
        cfg = open_clip.get_pretrained_cfg(name, "openai")
        if cfg and cfg.get("url"):
            return Path(cfg["url"]).name
    return None


def needs_quickgelu(arch: str, tag: str) -> bool:
    """True when ``tag``'s weights were trained with QuickGELU but ``arch``'s config runs GELU."""
    import open_clip

    model_cfg = open_clip.get_model_config(arch) or {}
    if model_cfg.get("quick_gelu", False):
        return False
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if cfg:
        return bool(cfg.get("quick_gelu", False))
    return Path(tag).name == _openai_filename(arch)  # a local copy of the OpenAI file


def resolve_checkpoint(arch: str, tag: str) -> Path:
    """The weights file for ``tag`` (via open_clip's download and cache) or the local path ``tag``."""
    import open_clip

    if arch not in open_clip.list_models():
        from benchmark.registry import UnknownNameError, unknown_name_message

        raise UnknownNameError(unknown_name_message("open_clip architecture", arch, open_clip.list_models()))
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
    try:
        return Path(open_clip.download_pretrained(cfg))
    except Exception as exc:
        url = cfg.get("url") or ""
        fname = Path(url).name if url else "open_clip_pytorch_model.bin"
        hub = cfg.get("hf_hub", "").rstrip("/")
        raise EncoderUnavailable(
            f"clip:{arch}:{tag}: weights not in the local cache and cannot be downloaded ({type(exc).__name__}). "
            f"Place the file {fname}{f' (from {url})' if url else ''} anywhere and pass its path as the tag: "
            f"clip:{arch}:/path/to/{fname}" + (f"; or put the Hugging Face repo {hub} into the HF cache" if hub else "")
        ) from exc


def build_open_clip(arch: str, tag: str) -> OpenClipEncoder:
    import open_clip

    from benchmark.weights import sha256_of

    path = resolve_checkpoint(arch, tag)
    force = needs_quickgelu(arch, tag)
    if force:
        warnings.warn(f"clip:{arch}:{tag}: these weights use QuickGELU; forcing it (use {arch}-quickgelu to silence)",
                      stacklevel=2)
    model = open_clip.create_model(arch, pretrained=str(path), force_quick_gelu=force, precision="fp32")
    return OpenClipEncoder(f"clip:{arch}:{tag}", model, open_clip.get_tokenizer(arch), sha256_of(path))


def register_tiny_config() -> None:
    """Register ``tiny-clip-random`` with open_clip (its API takes a config file)."""
    import open_clip

    if open_clip.get_model_config(TINY_NAME) is None:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / f"{TINY_NAME}.json"
            cfg.write_text(json.dumps(TINY_CONFIG))
            open_clip.add_model_config(cfg)


def build_tiny_clip_random() -> OpenClipEncoder:
    """A tiny CLIP with random weights seeded by ``TINY_SEED``: for tests only (``is_random``)."""
    import open_clip

    register_tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = open_clip.create_model(TINY_NAME, pretrained=None, precision="fp32")
    return OpenClipEncoder(TINY_NAME, model, open_clip.get_tokenizer(TINY_NAME), None, is_random=True)
