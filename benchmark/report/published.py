"""Published reference numbers (methods-spec 6.2), shown beside ours when the dataset matches.

None of these are the CLIP-LIT or RAVE authors' own tables (not retrievable offline); the
sources are third-party re-evaluations and an issue thread, labelled as such in the report.
"""
from __future__ import annotations

HAN_2024 = "Han et al., Laser & Optoelectronics Progress 61(22):2237006, 2024 (third-party, Table 1)"

# dataset key -> rows of (source, method, {metric: value})
PUBLISHED: dict[str, list[tuple[str, str, dict[str, float]]]] = {
    "baid": [
        (HAN_2024, "CLIP-LIT", {"psnr": 21.57, "ssim": 0.8618, "lpips": 0.1604, "musiq": 55.6154}),
        (HAN_2024, "EnlightenGAN", {"psnr": 17.55, "ssim": 0.8421, "lpips": 0.1968, "musiq": 48.3004}),
        (HAN_2024, "Zero-DCE", {"psnr": 17.66, "ssim": 0.8229, "lpips": 0.2087, "musiq": 48.7453}),
        (HAN_2024, "SNR-aware", {"psnr": 22.50, "ssim": 0.8704, "lpips": 0.1562, "musiq": 51.8545}),
        (HAN_2024, "DLEN", {"psnr": 23.41, "ssim": 0.8861, "lpips": 0.1520, "musiq": 51.3792}),
        (HAN_2024, "Retinexformer (supervised)", {"psnr": 24.17, "ssim": 0.8952, "lpips": 0.1367, "musiq": 52.4955}),
        (HAN_2024, "FECNet", {"psnr": 23.37, "ssim": 0.8878, "lpips": 0.1477, "musiq": 53.0940}),
        (HAN_2024, "LCDPNet", {"psnr": 23.11, "ssim": 0.8716, "lpips": 0.1673, "musiq": 53.7160}),
        ("ZeroIDIR paper note (CVPR 2026, third-party)", "CLIP-LIT", {"psnr": 21.705, "ssim": 0.862, "lpips": 0.151}),
        ("GitHub issue #11 (RAVE first author): released CLIP-LIT via test.py, setup problem", "CLIP-LIT",
         {"psnr": 9.51, "ssim": 0.61, "lpips": 0.34}),
    ],
    "backlit300": [
        (HAN_2024, m, {"musiq": v}) for m, v in [
            ("CLIP-LIT", 52.86), ("EnlightenGAN", 48.23), ("Zero-DCE", 47.78), ("SNR-aware", 52.52), ("DLEN", 51.43),
            ("Retinexformer (supervised)", 51.89), ("FECNet", 51.96), ("LCDPNet", 51.75)]
    ],
}


def published_for(dataset: str) -> list[tuple[str, str, dict[str, float]]]:
    """Reference rows for a dataset whose name contains ``baid`` or ``backlit300``; else empty."""
    key = dataset.lower().replace("-", "").replace("_", "")
    return [row for name, rows in PUBLISHED.items() if name in key for row in rows]
