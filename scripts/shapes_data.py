"""NumPy port of the built-in `shapes` dataset (src/data/shapes.rs, src/data/builtin.rs).

One anti-aliased shape (square, circle, triangle, heart) per 32x32 RGB image on black, with
independent uniform factors: shape, hue (full saturation and value), scale in [0.5, 1],
rotation in [0, 2 pi), x and y position. The random stream is the project's xoshiro256++
(src/rng.rs) seeded as `generate` seeds it, and the drawing follows `render` in float32, so
the images match the program's up to float rounding.

usage:
  python3 shapes_data.py [--out /tmp/shapes.npz] [--train 30000] [--test 5000]

Writes an npz with x_train / x_test (uint8 [n, 32, 32, 3], channels last, as the project
reads npz files), y_train / y_test (the shape index, uint8) and f_train / f_test (float32
[n, 6]: shape, hue, scale, rotation, x, y, the order of FACTOR_NAMES). `load_or_make` is the
cached entry point for other scripts.
"""
import argparse
import os

import numpy as np

SIZE = 32
SUPERSAMPLE = 3
HALF_WIDTH = np.float32(0.25)
SCALE_RANGE = (np.float32(0.5), np.float32(1.0))
SHAPE_NAMES = ["square", "circle", "triangle", "heart"]
FACTOR_NAMES = ["shape", "hue", "scale", "rotation", "x", "y"]
TRAIN, TEST, SEED = 30_000, 5_000, 2026  # src/data/builtin.rs
DEFAULT_PATH = "/tmp/shapes_data/shapes.npz"

M64 = (1 << 64) - 1


class Rng:
    """xoshiro256++ seeded through SplitMix64, as src/rng.rs."""

    def __init__(self, seed):
        sm = seed & M64
        state = []
        for _ in range(4):
            sm = (sm + 0x9E3779B97F4A7C15) & M64
            z = sm
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            state.append(z ^ (z >> 31))
        self.s = state

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next_u64(self):
        s = self.s
        result = (self._rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def uniform(self):
        """Uniform in [0, 1) with 24 random bits (exact in float32)."""
        return np.float32((self.next_u64() >> 40) * (1.0 / (1 << 24)))


def draw_factors(n, seed):
    """[n, 6] float32 factors in FACTOR_NAMES order, drawn as `Factors::draw`."""
    rng = Rng(seed ^ 0x5AA9E5)
    out = np.empty((n, 6), np.float32)
    tau = np.float32(2 * np.pi)
    for i in range(n):
        shape = min(int(rng.uniform() * np.float32(4)), 3)
        hue = rng.uniform()
        scale = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * rng.uniform()
        rotation = tau * rng.uniform()
        x, y = rng.uniform(), rng.uniform()
        out[i] = (shape, hue, scale, rotation, x, y)
    return out


def hue_rgb(h):
    """Full-saturation, full-value colours of hues `h` (turns), [..., 3] in [0, 1]."""
    h = np.asarray(h, np.float32)
    h6 = np.mod(h, np.float32(1)) * np.float32(6)
    sector = np.minimum(np.floor(h6), 5).astype(np.int64)
    f = (h6 - sector).astype(np.float32)
    one, zero = np.ones_like(f), np.zeros_like(f)
    table = np.stack([
        np.stack([one, f, zero], -1),
        np.stack([one - f, one, zero], -1),
        np.stack([zero, one, f], -1),
        np.stack([zero, one - f, one], -1),
        np.stack([f, zero, one], -1),
        np.stack([one, zero, one - f], -1),
    ], 0)  # [6, ..., 3]
    return np.take_along_axis(table, sector[None, ..., None], 0)[0]


def inside(shape, u, v):
    """Whether local points (u, v) (v up) are inside shape index `shape` (broadcast)."""
    sq = (np.abs(u) <= np.float32(0.85)) & (np.abs(v) <= np.float32(0.85))
    ci = u * u + v * v <= np.float32(1)
    h, base = np.float32(1.5), np.float32(-0.5)
    tr = (v >= base) & (v <= base + h) & (np.abs(u) <= (base + h - v) / np.float32(np.sqrt(3)))
    x, y = u * np.float32(1.2), v * np.float32(1.2) + np.float32(0.2)
    a = x * x + y * y - np.float32(1)
    he = a * a * a <= x * x * y * y * y
    return np.select([shape == 0, shape == 1, shape == 2], [sq, ci, tr], he)


def render(f):
    """Images of factors `f` ([n, 6]) as uint8 [n, SIZE, SIZE, 3], as `render`."""
    n = len(f)
    shape = f[:, 0].astype(np.int64)[:, None, None]
    margin = HALF_WIDTH * SCALE_RANGE[1] * np.float32(np.sqrt(2))
    cx = (margin + (np.float32(1) - np.float32(2) * margin) * f[:, 4])[:, None, None]
    cy = (margin + (np.float32(1) - np.float32(2) * margin) * f[:, 5])[:, None, None]
    half = (HALF_WIDTH * f[:, 2])[:, None, None]
    sin, cos = np.sin(f[:, 3])[:, None, None], np.cos(f[:, 3])[:, None, None]
    step = np.float32(1.0 / (SIZE * SUPERSAMPLE))
    # Sub-pixel sample positions, [SIZE * SUPERSAMPLE] along each axis.
    pos = np.arange(SIZE * SUPERSAMPLE, dtype=np.float32) * step + step / np.float32(2)
    px, py = pos[None, None, :], pos[None, :, None]
    dx, dy = (px - cx) / half, (cy - py) / half
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    hit = inside(shape, u, v).reshape(n, SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE)
    coverage = hit.sum((2, 4)).astype(np.float32) / np.float32(SUPERSAMPLE * SUPERSAMPLE)
    colour = hue_rgb(f[:, 1])[:, None, None, :]
    # Rust's f32::round is half away from zero; every value here is >= 0.
    return np.floor(np.float32(255) * colour * coverage[..., None] + np.float32(0.5)).astype(np.uint8)


def generate(n, seed, chunk=500):
    """`n` images and their factors drawn from `seed`, as `shapes::generate`."""
    f = draw_factors(n, seed)
    x = np.concatenate([render(f[i:i + chunk]) for i in range(0, n, chunk)])
    return x, f


def make(path, train=TRAIN, test=TEST):
    x_train, f_train = generate(train, SEED)
    x_test, f_test = generate(test, SEED + 1)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, x_train=x_train, x_test=x_test,
                        y_train=f_train[:, 0].astype(np.uint8), y_test=f_test[:, 0].astype(np.uint8),
                        f_train=f_train, f_test=f_test)
    os.replace(tmp, path)
    return path


def load_or_make(path=DEFAULT_PATH):
    """The dataset's arrays, generated once and cached at `path`."""
    if not os.path.exists(path):
        make(path)
    return dict(np.load(path))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_PATH)
    ap.add_argument("--train", type=int, default=TRAIN)
    ap.add_argument("--test", type=int, default=TEST)
    a = ap.parse_args()
    print(make(a.out, a.train, a.test))
