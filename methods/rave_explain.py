"""RAVE's bias analysis: which vocabulary tokens lie nearest to +r and -r (methods-spec 4.2 item 7)."""
from __future__ import annotations

from pathlib import Path

from methods.base import MethodContext
from methods.data import image_paths
from methods.encoders import load_encoder
from methods.fidelity import Fidelity
from methods.losses import rave_direction, rave_target
from methods.plugins.rave_shifted import RaveShifted, nearest_tokens


def explain(encoder: str, backlit_dir: str | Path, welllit_dir: str | Path, top: int = 15,
            device: str = "auto", vocabulary: str = "decoded-text") -> dict:
    """Tokens nearest to +r and -r (with cosines), tau before and after the shift, cos(r', r)."""
    from backlit_core.device import resolve_device

    enc = load_encoder(encoder, resolve_device(device))
    ctx = MethodContext(enc, image_paths(backlit_dir), image_paths(welllit_dir), seed=0,
                        settings={"shift_tokens": top}, fidelity=Fidelity(vocabulary=vocabulary))
    shifted = RaveShifted(ctx)  # raises MethodUnavailable for an image-only encoder
    v_b, v_w = shifted.reference_means(ctx)
    r = rave_direction(v_b, v_w)
    return {"encoder": encoder, "is_random": enc.is_random, "tau": float(rave_target(v_w, r)),
            "tau_shifted": shifted.info["tau"], "cos_shifted_original": shifted.info["cos_shifted_original"],
            "+r": nearest_tokens(enc, r, top, vocabulary), "-r": nearest_tokens(enc, -r, top, vocabulary)}
