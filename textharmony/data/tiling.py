"""Dynamic-resolution tiling: which grid of ViT-sized crops a page is cut into, and the crops. Pure functions.

DocOwl 1.5's shape-adaptive cropping (UReader's rule) / LLaVA-1.6's AnyRes, for a ViT of input H x W:

  candidate_grids(max_tiles, anchors)  -> [(rows, cols), ...]   (1, 1) always first; rows * cols <= max_tiles
  choose_grid((w, h), (H, W), grids)   -> (rows, cols)          argmax of S_ra + S_rr (:func:`grid_score`)
  crop_boxes((rows, cols), (H, W))     -> [(x0, y0, x1, y1)]    row-major, on the (rows*H) x (cols*W) canvas
  tile(img, (rows, cols), (H, W), fit) -> [PIL (W x H)]         the image fitted onto the canvas, cut up
  view_positions((rows, cols))         -> [(row, col)]          (-1, -1) for the whole-image view, then the crops

An image read with grid (r, c) is ``1 + r * c`` ViT views: the whole image at the ViT's size (the global view,
exactly what an untiled model sees), then the crops row by row. Grid (1, 1) means one view and no crops: the
image is read as without tiling (a word crop or any image no larger than the ViT input). The crops tile the
canvas exactly: no gap, no overlap (``crop_boxes`` covers [0, cols*W) x [0, rows*H)).

Grid choice (UReader, Ye et al. 2023, sec. 3.2, generalised to non-square crops): for an image of h x w px,
  S_rr = IoU of the h x w image and the (r*H) x (c*W) canvas, both anchored at (0, 0): resolution kept;
  S_ra = IoU of the two after scaling both to the same width: min(a, b) / max(a, b) with a = c*W * h / w the
         image's height at the canvas width and b = r*H: the aspect ratio kept (1 for an exact match).
The highest S_ra + S_rr wins; ties go to the fewer crops. Grids with a row or column of crops the image cannot
fill at its own resolution (rows > ceil(h / H) or cols > ceil(w / W)) are left out: such crops would only
upsample (UReader's rule alone cuts a 100 x 60 thumbnail into 2 x 3 crops for its aspect; LLaVA-1.6's
"effective resolution" counts no pixel above the original either). A 2048 x 1024 page with max_tiles 6 on a
square ViT gets (1, 2) (S_ra = 1; (2, 3) keeps more pixels but distorts: 0.75 + 0.14 < 1 + 0.05); a large
square page gets (2, 2) when that is an anchor, else (1, 1); an image no larger than the ViT input (1, 1).
"""
from __future__ import annotations

from typing import Sequence

from PIL import Image

Grid = tuple[int, int]


def candidate_grids(max_tiles: int, anchors: Sequence[Sequence[int]] = ()) -> list[Grid]:
    """The grids an image may be cut into: ``anchors`` ([rows, cols] pairs), or every (r, c) with r * c <=
    ``max_tiles`` when empty; (1, 1) is always included. Sorted by (crops, rows, cols): ties keep the first."""
    if anchors:
        grids = {(int(a[0]), int(a[1])) for a in anchors}
    else:
        grids = {(r, c) for r in range(1, max_tiles + 1) for c in range(1, max_tiles // r + 1)}
    grids.add((1, 1))
    return sorted(grids, key=lambda g: (g[0] * g[1], g[0], g[1]))


def grid_score(size: tuple[int, int], view_hw: tuple[int, int], grid: Grid) -> float:
    """S_ra + S_rr of ``grid`` (rows, cols) for an image of ``size`` = (w, h) px and ViT input ``view_hw`` = (H, W)
    (module docstring): in (0, 2], 2 = the canvas is the image's exact size."""
    w, h = size
    (H, W), (r, c) = view_hw, grid
    gh, gw = r * H, c * W
    inter = min(h, gh) * min(w, gw)
    s_rr = inter / (h * w + gh * gw - inter)
    a = gw * h / w
    s_ra = min(a, gh) / max(a, gh)
    return s_ra + s_rr


def choose_grid(size: tuple[int, int], view_hw: tuple[int, int], grids: Sequence[Grid]) -> Grid:
    """The (rows, cols) of ``grids`` with the highest :func:`grid_score` for an image of ``size`` = (w, h),
    among those it fills (rows <= ceil(h / H), cols <= ceil(w / W)); the first of equals (``candidate_grids``
    order: fewer crops first); (1, 1) when none is left."""
    w, h = max(1, int(size[0])), max(1, int(size[1]))
    H, W = view_hw
    best, best_s = (1, 1), -1.0
    for g in grids:
        if g[0] > -(-h // H) or g[1] > -(-w // W):
            continue
        s = grid_score((w, h), view_hw, g)
        if s > best_s + 1e-9:
            best, best_s = g, s
    return best


def num_views(grid: Grid) -> int:
    """ViT views of an image read with ``grid``: 1 for (1, 1) (untiled), else 1 global + rows * cols crops."""
    r, c = grid
    return 1 if r * c == 1 else 1 + r * c


def view_positions(grid: Grid) -> list[tuple[int, int]]:
    """(row, col) of each view, in reading order: (-1, -1) for the whole-image view, then the crops row-major."""
    r, c = grid
    return [(-1, -1)] + ([] if r * c == 1 else [(i, j) for i in range(r) for j in range(c)])


def crop_boxes(grid: Grid, view_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """PIL boxes (x0, y0, x1, y1) of the crops on the (rows*H) x (cols*W) canvas, row-major; they cover it."""
    (r, c), (H, W) = grid, view_hw
    return [(j * W, i * H, (j + 1) * W, (i + 1) * H) for i in range(r) for j in range(c)]


def fit_canvas(img: Image.Image, grid: Grid, view_hw: tuple[int, int], fit: str = "square") -> Image.Image:
    """``img`` on the (cols*W) x (rows*H) canvas of ``grid``: ``fit="square"`` stretches (bicubic; the grid was
    chosen for its aspect, so little distortion), ``"letterbox"`` keeps the aspect and pads with the border
    colour (:func:`textharmony.data.transforms.letterbox`) -- the ViT's own ``vision.resize`` policy."""
    (r, c), (H, W) = grid, view_hw
    if fit == "letterbox":
        from .transforms import letterbox
        return letterbox(img, (r * H, c * W))
    img = img.convert("RGB")
    return img if img.size == (c * W, r * H) else img.resize((c * W, r * H), Image.BICUBIC)


def tile(img: Image.Image, grid: Grid, view_hw: tuple[int, int], fit: str = "square") -> list[Image.Image]:
    """The rows * cols crops (each W x H, row-major) of ``img`` fitted onto ``grid``'s canvas."""
    canvas = fit_canvas(img, grid, view_hw, fit)
    return [canvas.crop(b) for b in crop_boxes(grid, view_hw)]


__all__ = ["candidate_grids", "choose_grid", "crop_boxes", "fit_canvas", "grid_score", "num_views", "tile",
           "view_positions"]
