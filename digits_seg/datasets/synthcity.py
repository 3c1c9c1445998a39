"""SynthCity: deterministic synthetic urban scenes with pixel-exact labels, for the demo and the tests.

Each scene is drawn twice in the same order, once in colour (with per-object shade,
global lighting and sensor noise) and once as class indices, so labels are exact.
"""

import os

import numpy as np
from PIL import Image, ImageDraw

from .. import fsutil

CLASSES = ("sky", "building", "road", "sidewalk", "lane marking", "car", "pedestrian", "traffic sign",
           "vegetation", "pole")
COLORMAP = ((70, 130, 180), (70, 70, 70), (128, 64, 128), (244, 35, 232), (255, 255, 255), (0, 0, 142),
            (220, 20, 60), (220, 220, 0), (107, 142, 35), (153, 153, 153))
"""Label colours (Cityscapes-like) written into the palette of every label PNG."""

SKY, BUILDING, ROAD, SIDEWALK, LANE, CAR, PEDESTRIAN, SIGN, VEGETATION, POLE = range(10)
_BASE = {SKY: (120, 170, 230), BUILDING: (150, 120, 100), ROAD: (80, 80, 85), SIDEWALK: (170, 160, 150),
         LANE: (235, 235, 225), CAR: (160, 30, 30), PEDESTRIAN: (60, 50, 90), SIGN: (230, 200, 30),
         VEGETATION: (60, 120, 40), POLE: (110, 110, 110)}


def label_palette():
    """768-entry palette: class colours, the rest black (255 = ignore also black)."""
    flat = [v for c in COLORMAP for v in c]
    return flat + [0] * (768 - len(flat))


class _Canvas:
    """Draw each shape on the colour image and the label image at once."""

    def __init__(self, w, h, rng, light, tint):
        self.img = Image.new("RGB", (w, h))
        self.lbl = Image.new("L", (w, h))
        self.di, self.dl = ImageDraw.Draw(self.img), ImageDraw.Draw(self.lbl)
        self.rng, self.light, self.tint = rng, light, tint

    def color(self, cls, jitter=30):
        base = np.array(_BASE[cls], dtype=np.float64)
        if cls in (CAR, BUILDING, PEDESTRIAN):
            base = self.rng.integers(30, 220, 3) if self.rng.random() < 0.6 else base
        c = (base + self.rng.integers(-jitter, jitter + 1, 3)) * self.light * self.tint
        return tuple(int(v) for v in np.clip(c, 0, 255))

    def shape(self, kind, xy, cls, color=None, **kw):
        color = color or self.color(cls)
        getattr(self.di, kind)(xy, fill=color, **kw)
        getattr(self.dl, kind)(xy, fill=cls, **kw)


def render(size, rng):
    """Render one scene; return (H×W×3 uint8 image, H×W uint8 class indices)."""
    w, h = size
    light = rng.uniform(0.55, 1.25)
    tint = np.array([rng.uniform(0.85, 1.15), 1.0, rng.uniform(0.85, 1.15)])
    cv = _Canvas(w, h, rng, light, tint)
    horizon = int(h * rng.uniform(0.35, 0.55))
    # sky as a vertical gradient
    top, bottom = np.array(cv.color(SKY, 10), float), np.array(cv.color(SKY, 10), float) * 1.15
    for y in range(horizon + 1):
        t = y / max(1, horizon)
        c = tuple(int(v) for v in np.clip(top * (1 - t) + bottom * t, 0, 255))
        cv.shape("line", [(0, y), (w, y)], SKY, color=c)
    # buildings along the horizon, with windows
    x = -int(rng.integers(0, max(2, w // 8)))
    while x < w:
        bw = int(rng.integers(max(3, w // 10), max(4, w // 3)))
        bh = int(rng.integers(max(2, horizon // 4), max(3, horizon - 1)))
        if rng.random() < 0.85:
            cv.shape("rectangle", [x, horizon - bh, x + bw, horizon + h // 20], BUILDING)
            win = cv.color(BUILDING, 10)
            step = max(3, w // 24)
            for wy in range(horizon - bh + step // 2, horizon - step // 2, step):
                for wx in range(x + step // 2, x + bw - step // 2, step):
                    if rng.random() < 0.5:
                        cv.di.rectangle([wx, wy, wx + step // 3, wy + step // 3],
                                        fill=tuple(int(v * 0.5) for v in win))
        elif rng.random() < 0.9:
            r = int(rng.integers(max(2, w // 16), max(3, w // 6)))
            cv.shape("ellipse", [x, horizon - 2 * r, x + 2 * r, horizon + r // 2], VEGETATION)
        x += bw
    # ground: sidewalks then the road as a trapezoid towards a vanishing point
    vx = int(w * rng.uniform(0.3, 0.7))
    cv.shape("rectangle", [0, horizon, w, h], SIDEWALK)
    spread = rng.uniform(0.35, 0.6)
    road = [(vx - 1, horizon), (vx + 1, horizon), (int(w * (1.0 + spread)), h), (int(-w * spread), h)]
    cv.shape("polygon", road, ROAD)
    # dashed lane marking from the vanishing point down the middle
    n_dash = 6
    for k in range(n_dash):
        t0, t1 = (k + 0.3) / n_dash, (k + 0.7) / n_dash
        y0, y1 = horizon + (h - horizon) * t0 ** 1.5, horizon + (h - horizon) * t1 ** 1.5
        hw0, hw1 = max(0.5, w * 0.008 * t0 * 2), max(0.5, w * 0.008 * t1 * 2)
        x0 = vx + (w / 2 - vx) * t0 * 0.4
        x1 = vx + (w / 2 - vx) * t1 * 0.4
        cv.shape("polygon", [(x0 - hw0, y0), (x0 + hw0, y0), (x1 + hw1, y1), (x1 - hw1, y1)], LANE,
                 color=cv.color(LANE, 8))
    # roadside trees, poles with signs, pedestrians, cars (far to near)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        objects.append(("tree", rng.uniform(0.1, 1.0)))
    for _ in range(int(rng.integers(1, 3))):
        objects.append(("pole", rng.uniform(0.2, 1.0)))
    for _ in range(int(rng.integers(0, 4))):
        objects.append(("pedestrian", rng.uniform(0.2, 1.0)))
    for _ in range(int(rng.integers(1, 4))):
        objects.append(("car", rng.uniform(0.15, 1.0)))
    for kind, depth in sorted(objects, key=lambda o: o[1]):
        y = horizon + (h - horizon) * depth
        scale = max(0.05, depth) * h / 64.0
        side = -1 if rng.random() < 0.5 else 1
        road_half = (w * (0.5 + spread)) * depth
        if kind == "car":
            cx = vx + (w / 2 - vx) * depth * 0.4 + side * road_half * rng.uniform(0.15, 0.6)
            cw, ch = 14 * scale, 8 * scale
            cv.shape("rectangle", [cx - cw / 2, y - ch, cx + cw / 2, y], CAR)
            cv.shape("rectangle", [cx - cw / 3, y - ch * 1.5, cx + cw / 3, y - ch * 0.9], CAR)
            continue
        edge = vx + side * (road_half + 3 * scale)
        if kind == "tree":
            r = 6 * scale
            cv.shape("rectangle", [edge - scale, y - 8 * scale, edge + scale, y], VEGETATION,
                     color=cv.color(VEGETATION, 5))
            cv.shape("ellipse", [edge - r, y - 8 * scale - 2 * r, edge + r, y - 8 * scale + r * 0.3], VEGETATION)
        elif kind == "pole":
            ph = 22 * scale
            cv.shape("rectangle", [edge - max(0.5, 0.6 * scale), y - ph, edge + max(0.5, 0.6 * scale), y], POLE)
            s = 3 * scale
            if rng.random() < 0.5:
                cv.shape("ellipse", [edge - s, y - ph - s, edge + s, y - ph + s], SIGN)
            else:
                cv.shape("polygon", [(edge, y - ph - s), (edge + s, y - ph + s), (edge - s, y - ph + s)], SIGN)
        else:
            px = edge + side * 2 * scale
            cv.shape("rectangle", [px - 1.2 * scale, y - 9 * scale, px + 1.2 * scale, y], PEDESTRIAN)
            cv.shape("ellipse", [px - 1.3 * scale, y - 11.5 * scale, px + 1.3 * scale, y - 8.8 * scale], PEDESTRIAN,
                     color=cv.color(PEDESTRIAN, 10))
    img = np.asarray(cv.img, dtype=np.int16)
    img = img + rng.integers(-6, 7, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8), np.asarray(cv.lbl).copy()


def generate(out_dir, count, size=(64, 64), seed=0, image_format="png", on_progress=None):
    """Write `count` scenes to `out_dir`/images, `out_dir`/labels (palette PNG) and `out_dir`/classes.txt."""
    img_dir, lbl_dir = os.path.join(out_dir, "images"), os.path.join(out_dir, "labels")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lbl_dir, exist_ok=True)
    palette = label_palette()
    ext = "jpg" if image_format in ("jpg", "jpeg") else "png"
    counts = np.zeros(len(CLASSES), dtype=np.int64)
    for i in range(count):
        rng = np.random.default_rng([int(seed), i])
        image, label = render(tuple(size), rng)
        counts += np.bincount(label.ravel(), minlength=256)[:len(CLASSES)]
        name = "scene_%05d" % i
        if ext == "jpg":
            Image.fromarray(image).save(os.path.join(img_dir, name + ".jpg"), "JPEG", quality=90)
        else:
            Image.fromarray(image).save(os.path.join(img_dir, name + ".png"), "PNG", compress_level=1)
        lbl = Image.fromarray(label, "P")
        lbl.putpalette(palette)
        lbl.save(os.path.join(lbl_dir, name + ".png"), "PNG")
        if on_progress:
            on_progress((i + 1) / count)
    fsutil.write_bytes_atomic(os.path.join(out_dir, "classes.txt"), "".join(c + "\n" for c in CLASSES).encode())
    return {"count": count, "size": list(size), "seed": seed, "classes": list(CLASSES),
            "class_pixels": {c: int(n) for c, n in zip(CLASSES, counts)}, "images": img_dir, "labels": lbl_dir}
