"""``bench datasets``: list, prepare, verify, synthesise and show datasets."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
from click_didyoumean import DYMGroup

from benchmark.data.folder import LAYOUTS_HELP


def _errors():  # the exceptions every subcommand turns into a clean message
    from backlit_core.registry import UnknownNameError
    from benchmark.data.errors import DatasetError

    return (DatasetError, UnknownNameError)


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


@click.group(cls=DYMGroup)
def datasets() -> None:
    """Dataset cards (datasets/*.yaml) and data under datasets/data (or $BACKLIT_BENCH_DATA)."""


@datasets.command("list")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), help="Data root (default: datasets/data).")
def list_datasets(root: Path | None) -> None:
    """Every card with its status (present, ready, missing, manual, stale) and what to do."""
    from benchmark.data import list_cards, status

    try:
        cards = list_cards()
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None
    for card in cards:
        st = status(card, root)
        click.echo(f"{card.name:18s} {card.kind:9s} {st.state:8s} {card.title}")
        for line in st.action.splitlines():
            click.echo(f"{'':37s}{line}")


@datasets.command("prepare")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), help="Data root (default: datasets/data).")
def prepare_dataset(name: str, root: Path | None) -> None:
    """Download/locate, check and lay out NAME (a card name or a folder path); print its directory."""
    from benchmark.data import prepare
    from benchmark.data.layout import read_stamp

    _log_to_stderr()
    t0 = time.perf_counter()
    try:
        dest = prepare(name, root)
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None
    counts = (read_stamp(dest) or {}).get("counts", {})
    click.echo(", ".join(f"{t}: {n}" for t, n in counts.items()) + f"  ({time.perf_counter() - t0:.1f} s)", err=True)
    click.echo(str(dest))


def _describe(folders: dict[str, Path]) -> int:
    """Print where each standard-layout folder comes from, input / ground-truth counts and pairing problems
    (duplicates, missing or orphan ground truth, unreadable headers, sizes that differ); the number of pairs
    of different sizes."""
    from backlit_core.image_io import list_images
    from benchmark.data.cards import PAIRS
    from benchmark.data.pairs import match, size_mismatch

    for target, folder in folders.items():
        click.echo(f"{target:24s} <- {folder} ({len(list_images(folder))} images)")
    mismatched = 0
    for inp, gt in PAIRS:
        if inp not in folders:
            continue
        rep = match(list_images(folders[inp]), list_images(folders[gt]) if gt in folders else None)
        with_gt = f"{len(rep.pairs) - len(rep.missing_gt)} with ground truth" if gt in folders else "no ground truth"
        click.echo(f"{inp.split('/')[0]}: {len(rep.pairs)} inputs, {with_gt}")
        for line in rep.problems():
            click.echo(f"  {line}")
        for i, g in ((i, g) for i, g in rep.pairs if g is not None):
            try:
                problem = size_mismatch(i, g)
            except _errors() as exc:  # an unreadable header: the manifest check says more
                problem = str(exc)
            if problem:
                click.echo(f"  {problem}")
                mismatched += problem.startswith("size mismatch")
    return mismatched


@datasets.command("verify", epilog="\b\n" + LAYOUTS_HELP)
@click.argument("name_or_dir")
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Check against this manifest (default: the card's, if it has one).")
@click.option("--write-manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the sha256 of every file of your copy to this file.")
def verify_dataset(name_or_dir: str, manifest: Path | None, write_manifest: Path | None) -> None:
    """Check a dataset (NAME) or a folder (DIR, in a layout below): what is where, counts, pairing, sizes, sha256.

    Exits 1 when a pair's sizes differ or files differ from the manifest. Manifest paths are standard-layout
    paths (test/input/<file>), so one manifest checks a folder and the dataset prepared from it."""
    from benchmark.data import dataset_dir, load_card
    from benchmark.data.folder import detect
    from benchmark.data.manifest import build_manifest, layout_files, read_manifest, verify_manifest
    from benchmark.data.manifest import write_manifest as write
    from benchmark.data.prepare import card_folder, is_path_like

    try:
        if is_path_like(name_or_dir) or Path(name_or_dir).is_dir():
            folder = Path(name_or_dir)
            if not folder.is_dir():
                raise click.ClickException(f"{folder}: no such directory")
        else:
            card = load_card(name_or_dir)
            folder = dataset_dir(card.name)
            if not folder.is_dir() and card.kind == "folder":
                folder = card_folder(card)  # not prepared: the card's own folder
            manifest = manifest or (card.manifest if card.manifest and card.manifest.is_file() else None)
        if not folder.is_dir():
            raise click.ClickException(f"{folder}: not found; prepare it first: bench datasets prepare {name_or_dir}")
        folders = detect(folder)
        files = layout_files(folders)
        mismatched = _describe(folders)
        result = verify_manifest(folders, read_manifest(manifest)) if manifest else None
        if result is not None:
            click.echo(f"manifest {manifest}: {result.summary()}")
        else:
            click.echo(f"no manifest to check against ({len(files)} files); record one with --write-manifest FILE")
        if write_manifest is not None:
            write(write_manifest, build_manifest(folders), title=f"sha256 of {folder.name}; check with: "
                  f"bench datasets verify {name_or_dir} --manifest {write_manifest}")
            click.echo(f"wrote {write_manifest} ({len(files)} files)")
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None
    if mismatched or (result is not None and not result.ok):
        sys.exit(1)


@datasets.command("synthesize")
@click.option("--seed", type=int, default=None, help="Seed (default: the card's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: datasets/data/synthetic-backlit).")
@click.option("--long-side", type=click.IntRange(64, 600), default=None,
              help="Long side of the images in pixels (default: the card's).")
def synthesize_dataset(seed: int | None, out: Path | None, long_side: int | None) -> None:
    """Generate the embedded synthetic-backlit dataset (offline) and its contact sheet."""
    from dataclasses import replace

    from benchmark.data import dataset_dir, load_card
    from benchmark.data.layout import read_stamp
    from benchmark.data.prepare import synthesize
    from benchmark.data.synthetic import GeneratorParams

    params = GeneratorParams(**load_card("synthetic-backlit").generator)
    params = replace(params, **{k: v for k, v in (("seed", seed), ("long_side", long_side)) if v is not None})
    dest = synthesize(out or dataset_dir("synthetic-backlit"), params)
    stamp = read_stamp(dest) or {}
    click.echo(f"{stamp.get('counts')} in {stamp.get('seconds')} s; look at {dest / 'contact_sheet.png'}", err=True)
    click.echo(str(dest))


@datasets.command("show")
@click.argument("name")
def show_dataset(name: str) -> None:
    """Print a card: description, citation, licence, sources, layout, status and how to prepare it."""
    from benchmark.data import load_card, status

    try:
        card = load_card(name)
    except _errors() as exc:
        raise click.ClickException(str(exc)) from None
    st = status(card)
    click.echo(f"{card.name}: {card.title}\nkind: {card.kind}    status: {st.state}    card: {card.file}")
    for label, text in (("description", card.description), ("notes", card.notes), ("licence", card.licence),
                        ("homepage", card.homepage), ("citation", card.citation)):
        if text:
            click.echo(f"\n{label}:\n  " + "\n  ".join(text.splitlines()))
    if card.sources:
        click.echo("\nsources:")
        for s in card.sources:
            extra = "".join(f"; {k} {v}" for k, v in (("code", s.code), ("file", s.filename), ("sha256", s.sha256)) if v)
            click.echo(f"  {s.id} [{s.type}] -> raw/{s.into}: {s.link}{extra}")
    if card.layout:
        click.echo("\nlayout (upstream folder -> standard layout):")
        for r in card.layout:
            click.echo(f"  raw/{r.group}/{' or '.join(r.paths)} -> {r.target}{'' if r.required else ' (optional)'}")
    if card.path:
        click.echo(f"\nfolder: {card.path}")
    if card.expect:
        click.echo("\nexpected counts: " + ", ".join(f"{t}: {n}" for t, n in card.expect.items()))
    click.echo("\nprepare:\n  " + "\n  ".join(card.prepare.splitlines()))
    if st.action:
        click.echo("\nnext step:\n  " + "\n  ".join(st.action.splitlines()))
