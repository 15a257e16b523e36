"""What a method is to the trainer: a guidance module with a loss for the enhancer and, for the
prompt methods (CLIP-LIT, latent-prompt), learnable guidance trained by cross-entropy and ranking."""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from methods.encoder_base import Encoder
from methods.guidance_context import MethodContext, MethodUnavailable
from methods.losses import LOGIT_SCALE, W_GUIDANCE, prompt_guidance_loss
from methods.method_parameters import Parameter, complete, recorded


class GuidanceMethod(nn.Module):
    """Base class. ``state_dict()`` holds the guidance state (learnable or fixed) for checkpoints."""

    name: ClassVar[str]
    kind: ClassVar[str] = "clip-guided"  # see methods/registry.py
    training_loop: ClassVar[str] = "methods.guided_training:train_guided"  # imported by name when a run is trained
    source: ClassVar[str]  # paper and upstream repository
    needs_text: ClassVar[bool] = False
    prompt_phases: ClassVar[bool] = False  # CE initialisation + rank-learning rounds
    guidance_weight: ClassVar[float] = W_GUIDANCE
    guidance_lr: ClassVar[float | None] = None  # Adam lr of the learnable guidance
    paper_total_iters: ClassVar[int]
    method_parameters: ClassVar[tuple[Parameter, ...]] = ()  # the method's own settings (methods.method_parameters)

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__()
        if self.needs_text and not ctx.encoder.has_text:
            raise MethodUnavailable(f"{self.name} needs a text encoder; {ctx.encoder.name} is image-only "
                                    "(use a clip:<arch>:<weights> encoder)")
        self.settings = complete(self.method_parameters, ctx.settings)
        self.info: dict[str, object] = {}  # extra facts for train_summary.json
        self.start: dict[str, object] = {"from": "scratch"}  # where training starts (train_summary.json)
        self.initial_enhancer: dict[str, torch.Tensor] | None = None  # a trained start: no CE, no warm-up
        self.ce_counted = True  # False: the loop's counter starts after CE (methods.guided_training, "uncounted CE")

    def recorded_settings(self) -> dict:
        """The settings the run records as ``method_settings``."""
        return recorded(self.method_parameters, self.settings)

    def guidance_loss(self, emb: torch.Tensor) -> torch.Tensor:
        """Loss of the enhancer's output embeddings (B x D, normalised), before ``guidance_weight``."""
        raise NotImplementedError


class PromptMethod(GuidanceMethod):
    """A learnable negative/positive pair; the enhancer minimises P(negative) of its output.

    ``logit_scale`` is the similarity scale of every phase (CE, enhancer guidance, ranking).
    """

    prompt_phases = True

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self._frozen: torch.Tensor | None = None
        self.logit_scale = LOGIT_SCALE

    def prompt_features(self, encoder: Encoder) -> torch.Tensor:
        """The pair's features (2 x D, not normalised), differentiable in the learnable parameters."""
        raise NotImplementedError

    @torch.no_grad()
    def freeze_features(self, encoder: Encoder) -> None:
        """Compute the pair's features once for an enhancer phase (the prompts are frozen there)."""
        self._frozen = self.prompt_features(encoder).detach()

    def guidance_loss(self, emb: torch.Tensor) -> torch.Tensor:
        if self._frozen is None:
            raise RuntimeError("freeze_features() must be called before an enhancer phase")
        return prompt_guidance_loss(emb, self._frozen, self.logit_scale)
