"""CLIP-LIT (Liang et al., ICCV 2023): a learnable negative/positive prompt pair (methods-spec 3).

Each prompt is the token-embedding sequence of ``SOT X*16 EOT`` run through the frozen CLIP text
transformer and read at EOT. Only positions up to EOT influence the output (causal mask), so the
learnable tensor holds those 18 positions per prompt (2 x 18 x width), initialised with CLIP's own
embeddings of that string; this is exactly equivalent to upstream's 2 x 77 x width tensor.

Training (in :mod:`methods.guided_training`): cross-entropy initialisation of the prompts, reconstruction
warm-up, then rounds of enhancer training against frozen prompts (320 x P(negative) + 22.5 x
identity) and prompt refinement by rank learning.

Where it starts (fidelity switch ``clip_lit_start``): upstream's train.py defaults (:450-453) load the
released ``init_enhancement_model.pth`` and ``init_prompt_pair.pth`` and skip CE and warm-up
(:134-160), 71.3K iterations in all (``released-init``); ``scratch`` is the paper's description. The
files are found by the settings ``init_enhancer`` (a released name or a file) and ``init_prompts``
(a file: the prompt pair has no registry entry); a missing one skips the run with the reason.

Ranking order (the question of spec 3.5; fidelity switch ``ranking_order``): upstream's two-slot
buffer ranks backlit > newest result > older result > well-lit (the default), which pulls the
*older* result closer to well-lit; ``old-then-new`` follows the paper's intent, results moving toward
well-lit over rounds (margins 0.9, 0.9, 0.1, 0.1; :func:`methods.losses.ranking_loss`, docs/fidelity.md).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from backlit_core.hashing import sha256_of
from backlit_core.torch_files import load_tensors
from methods.base import MethodContext, MethodUnavailable, PromptMethod
from methods.encoder_base import Encoder
from methods.method_parameters import Parameter
from methods.network import EnhanceNet, read_state_dict

PROMPT_LENGTH = 16
PROMPT_WORD = "X"
INIT_PROMPTS_URL = "https://github.com/ZhexinLiang/CLIP-LIT/releases/tag/v1.0.0"  # README.md:113; not in the repository
RELEASED_INIT_TOTAL = 71_300  # upstream's default run from the released init (num_epochs 2000; spec 3.6)
INIT_ENHANCER = Parameter("init_enhancer", "clip-lit-init", str, "the enhancer a released-init run starts from: "
                          "a released name (benchmark/weights.py) or a file", recorded=False)
INIT_PROMPTS = Parameter("init_prompts", "", str, "upstream's init_prompt_pair.pth (CLIP-LIT release v1.0.0) for a "
                         "released-init run: a file; empty: not available", recorded=False)


class ClipLit(PromptMethod):
    name = "clip-lit"
    source = "Liang et al., ICCV 2023 (ZhexinLiang/CLIP-LIT)"
    needs_text = True
    guidance_lr = 5e-6
    paper_total_iters = 109_400  # 8000 CE + 1000 warm-up + ~34 rounds (spec 3.6, lower bound)
    method_parameters = (INIT_ENHANCER, INIT_PROMPTS)

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        enc = ctx.encoder
        tokens = enc.tokenize([" ".join([PROMPT_WORD] * PROMPT_LENGTH)] * 2)
        eot = enc.eot_index(tokens)
        with torch.no_grad():
            init = enc.token_embeddings(tokens[:, : int(eot.max()) + 1]).clone()
        if ctx.fidelity.clip_lit_start == "released-init":
            init = self._released_start(ctx, init)
        self.prompts = nn.Parameter(init)
        self.register_buffer("eot", eot.clone())

    def _released_start(self, ctx: MethodContext, scratch: torch.Tensor) -> torch.Tensor:
        """Upstream's default start: the released enhancer and prompt pair (prompts cut to ``scratch``'s
        positions); raises MethodUnavailable when a file is missing."""
        enhancer = self._init_file(ctx, "init_enhancer", "init_enhancement_model.pth")
        prompts = self._init_file(ctx, "init_prompts", "init_prompt_pair.pth")
        net = EnhanceNet("zeros")
        try:
            net.load_state_dict(read_state_dict(enhancer), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{enhancer}: not the released CLIP-LIT init enhancer ({exc})") from None
        pair = load_tensors(prompts, "upstream's init_prompt_pair.pth holds `embedding_prompt`, 2 x 77 x width")
        pair = pair.get("module.embedding_prompt", pair.get("embedding_prompt")) if isinstance(pair, dict) else None
        fits = isinstance(pair, torch.Tensor) and pair.dim() == 3 and pair.shape[0] == 2
        if not fits or pair.shape[1] < scratch.shape[1] or pair.shape[2] != scratch.shape[2]:
            raise ValueError(f"{prompts}: no 2 x 77 x {scratch.shape[2]} `embedding_prompt` (upstream's prompt pair "
                             f"for this text encoder)")
        self.initial_enhancer = net.state_dict()
        self.paper_total_iters = RELEASED_INIT_TOTAL
        self.start = {"from": "released-init",
                      **{key: {"file": path.name, "sha256": sha256_of(path)}
                         for key, path in (("enhancer", enhancer), ("prompts", prompts))}}
        return pair[:, : scratch.shape[1]].to(scratch.dtype).clone()

    def _init_file(self, ctx: MethodContext, setting: str, upstream_name: str) -> Path:
        value = str(self.settings[setting])
        if value and Path(value).is_file():
            return Path(value)
        if value and ctx.find_weights is not None:
            try:
                return ctx.find_weights(value)
            except (KeyError, FileNotFoundError, RuntimeError) as exc:
                reason = str(exc).splitlines()[0]
        elif value:
            reason = f"{value} is no file, and no weights registry is given to look it up by name"
        else:
            reason = f"set train.{self.name}.{setting} to its path" + (
                f" (upstream publishes it unpinned at {INIT_PROMPTS_URL})" if setting == "init_prompts" else "")
        raise MethodUnavailable(f"{self.name} starts from upstream's released {upstream_name} (fidelity clip_lit_start: "
                                f"released-init), which is not available: {reason}; or set clip_lit_start: scratch")

    def prompt_features(self, encoder: Encoder) -> torch.Tensor:
        return encoder.encode_embeddings(self.prompts, self.eot)


METHOD = ClipLit
