"""Guidance / identity encoders: effnet-lite0 classifies real photos, tiny-clip-random's text path,
open_clip loading rules (QuickGELU, offline errors), name errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from backlit_core.registry import UnknownNameError
from methods.encoder_base import EncoderUnavailable
from methods.encoders import load_encoder, map_lukemelas_state_dict

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
# ImageNet classes that name each skimage photo
PHOTOS = {"chelsea": CAT_CLASSES, "coffee": (504, 967, 968), "rocket": (657, 744, 812)}


def _photo(name: str) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255
    return F.interpolate(img[None], size=(224, 224), mode="bilinear", antialias=True)


@pytest.fixture(scope="module")
def effnet():
    return load_encoder("effnet-lite0")


def _logits(enc, x: torch.Tensor) -> torch.Tensor:
    pooled, _ = enc.encode(enc.preprocess(x), features=False)  # the pre-classifier feature of the encoder
    return enc.model.classifier(pooled)


def test_effnet_lite0_classifies_the_cat(effnet) -> None:
    with torch.no_grad():
        logits = _logits(effnet, _photo("chelsea"))
        assert torch.equal(logits, effnet.model(effnet.preprocess(_photo("chelsea"))))  # same path as timm's forward
    assert int(logits.argmax()) in CAT_CLASSES


def test_effnet_lite0_wants_imagenet_normalisation(effnet) -> None:
    """The weights' input normalisation, found by checking: ImageNet mean/std beats [-1, 1] scaling."""

    def mean_logprob(mean: tuple, std: tuple) -> float:
        total = 0.0
        for name, classes in PHOTOS.items():
            x = (_photo(name) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
            with torch.no_grad():
                p = effnet.model(x).softmax(-1)[0]
            assert int(p.argmax()) in classes, name
            total += float(p[list(classes)].sum().log())
        return total / len(PHOTOS)

    assert effnet.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert mean_logprob((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) > mean_logprob((0.5,) * 3, (0.5,) * 3)


def test_effnet_lite0_embedding_features_and_gradient(effnet) -> None:
    x = torch.rand(2, 3, 96, 80, requires_grad=True)
    out = effnet(x, features=True)
    assert out.embedding.shape == (2, 1280) and effnet.embed_dim == 1280
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(2))
    assert [f.shape[1:] for f in out.features] == [(16, 112, 112), (24, 56, 56), (40, 28, 28), (112, 14, 14), (320, 7, 7)]
    out.embedding.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the image
    assert not any(p.requires_grad for p in effnet.parameters())  # frozen
    effnet.train()
    assert not effnet.training and not effnet.model.training  # BatchNorm stays in eval mode
    assert effnet.is_random is False and len(effnet.weights_sha256) == 64 and not effnet.has_text


def test_effnet_levels_have_unit_scale_on_photos(effnet) -> None:
    with torch.no_grad():
        feats = effnet(_photo("astronaut"), features=True).features
    rms = [float(f.pow(2).mean().sqrt()) for f in feats]
    assert all(0.7 < v < 1.4 for v in rms), rms


def test_lukemelas_mapping_checks_shapes() -> None:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    names = list(model.state_dict())
    source = {f"k{i}": t.clone() for i, t in enumerate(model.state_dict().values())}
    assert list(map_lukemelas_state_dict(source, model)) == names
    source["k0"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="does not fit"):
        map_lukemelas_state_dict(source, model)


def test_tiny_clip_random_text_path() -> None:
    enc = load_encoder("tiny-clip-random")
    assert enc.is_random and enc.has_text and enc.weights_sha256 is None
    tokens = enc.tokenize([" ".join(["X"] * 16), "a photo of a cat"])
    eot = enc.eot_index(tokens)
    assert eot.tolist() == [17, 6]  # SOT + 16 X + EOT; SOT + 5 words + EOT
    full = enc.model.encode_text(tokens, normalize=True)  # open_clip's own pass over 77 positions
    assert torch.allclose(enc.encode_tokens(tokens), full, atol=1e-5)  # truncated after EOT: same
    emb = enc.token_embeddings(tokens[:1, :18])
    assert torch.allclose(F.normalize(enc.encode_embeddings(emb, eot[:1]), dim=-1), full[:1], atol=1e-5)
    vocab = enc.vocabulary_tokens("token-ids")
    assert vocab.shape == (enc.vocab_size - 2, 3) and enc.decode_token(vocab[1000, 1]) != ""
    out = enc(torch.rand(3, 3, 40, 40), features=True)
    assert out.embedding.shape == (3, enc.embed_dim) and len(out.features) == 5


def test_unknown_and_malformed_encoder_names() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'effnet-lite0'"):
        load_encoder("effnet")
    with pytest.raises(UnknownNameError, match="clip:<arch>"):
        load_encoder("clip:ViT-B-32")
    with pytest.raises(UnknownNameError, match="open_clip architecture"):
        load_encoder("clip:ViT-B-33:openai")


def test_quickgelu_is_forced_for_openai_weights() -> None:
    from methods.clip_encoder import needs_quickgelu

    assert needs_quickgelu("ViT-B-32", "openai")  # the trap: plain config runs GELU
    assert not needs_quickgelu("ViT-B-32-quickgelu", "openai")
    assert needs_quickgelu("RN101", "openai")
    assert needs_quickgelu("ViT-B-32", "/somewhere/ViT-B-32.pt")  # a local copy of OpenAI's file
    assert not needs_quickgelu("ViT-B-32", "/somewhere/my-finetune.pt")


def test_missing_clip_weights_name_the_file(tmp_path) -> None:
    with pytest.raises(EncoderUnavailable, match=r"no such file .*OpenAI's file for ViT-B-32 is ViT-B-32\.pt"):
        load_encoder(f"clip:ViT-B-32:{tmp_path / 'ViT-B-32.pt'}")
    try:
        load_encoder("clip:ViT-B-32-quickgelu:openai")
    except EncoderUnavailable as exc:  # offline and not cached: says what to place where
        assert "ViT-B-32.pt" in str(exc) and "clip:ViT-B-32-quickgelu:/path/to/ViT-B-32.pt" in str(exc)
    else:  # pragma: no cover - only where the weights are cached
        pytest.skip("ViT-B-32 openai weights are cached here; offline error not testable")


def test_modified_resnet_levels_match_open_clip_forward() -> None:
    """The RN path (the papers' RN101 identity encoder) on a tiny random ModifiedResNet."""
    import open_clip

    from methods.clip_encoder import TINY_CONFIG, OpenClipEncoder

    torch.manual_seed(0)
    model = open_clip.model.CLIP(embed_dim=32, vision_cfg={"layers": [1, 1, 1, 1], "width": 16, "image_size": 64},
                                 text_cfg=TINY_CONFIG["text_cfg"]).eval()
    enc = OpenClipEncoder("rn-tiny", model, open_clip.get_tokenizer("RN50"), None, is_random=True).freeze()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = enc(x, features=True)
        ref = model.encode_image(enc.preprocess(x), normalize=True)
    assert torch.allclose(out.embedding, ref, atol=1e-6)
    # stem after avg-pool, layer1..layer4 (channels: width, 4 x width x 1, 2, 4, 8)
    assert [tuple(f.shape[1:]) for f in out.features] == [(16, 16, 16), (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]


def test_vocabulary_decoded_text_is_upstreams() -> None:
    """RAVE's train_rave.py: ``clip.tokenize(tokenizer.decode([i]))`` for every id, keyed by the text."""
    enc = load_encoder("tiny-clip-random")
    labels = enc.vocabulary("decoded-text")
    texts = [enc.tokenizer.decode([i]) for i in range(enc.vocab_size)]
    assert labels == list(dict.fromkeys(texts)) and len(labels) < enc.vocab_size  # e.g. partial UTF-8 bytes
    assert labels[0] == "!" and enc.tokenizer.decode([enc.tokenizer.sot_token_id]) in labels  # SOT/EOT kept
    some = [labels.index(t) for t in ("cat ", "cat", "<end_of_text>")]
    tokens = enc.vocabulary_tokens("decoded-text")
    assert torch.equal(tokens[some], enc.tokenize([labels[i] for i in some]))
    cat = enc.tokenizer.encoder["cat</w>"]
    assert tokens[some[0], :3].tolist() == [enc.tokenizer.sot_token_id, cat, enc.tokenizer.eot_token_id]
    ids = enc.vocabulary("token-ids")
    assert len(ids) == enc.vocab_size - 2 and ids[cat] == "cat"  # SOT and EOT are the last two ids
    with pytest.raises(ValueError, match="vocabulary must be one of decoded-text, token-ids"):
        enc.vocabulary_tokens("ids")
