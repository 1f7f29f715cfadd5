"""Which convolutional VAE learns colour on the built-in `shapes` dataset: a switchable copy of
the project's conv VAE (the PyTorch peer, shared/reference/torch_conv_vae.py) and a trainer
that scores one variant.

The baseline (no switches) is exactly the peer's networks:
  encoder  conv 4x4/2 (3->32) ReLU, conv 4x4/2 (32->64) GroupNorm(8) ReLU,
           dense (4096->256) ReLU, dense heads mu / logvar (256->latent);
  decoder  dense (latent->256) ReLU, dense (256->64*8*8) ReLU,
           convT 4x4/2 (64->32) GroupNorm(8) ReLU, convT 4x4/2 (32->3);
  Bernoulli likelihood on [0, 1] values, KL to N(0, I), Adam 1e-3, batch 128.

Switches (see --help): group norms on or off per side, first-layer width, an extra stride-1
3x3 conv or a 1x1 stem at full resolution, global colour paths into the encoder's dense input
(the input's per-image mean colour, or the global average of the last conv map), a colour
vector broadcast over the decoder's maps, a dense per-image offset of each output channel
(--colour-bias: the peer's decoder plus one dense layer, 256->3, whose output is added to
every pixel of the last layer's channels), and the likelihood (Bernoulli; Gaussian with a
learned or fixed scale; a per-channel discretised logistic on 256 levels, as PixelCNN++
without the mixture).

On shapes (latent 10, 5 epochs) the baseline reconstructs every shape in grey (hue read-out
about 0); with --colour-bias it reads out hue at 0.93-0.95 after the first epoch and at
0.96-0.98 after the fifth, under Bernoulli and under the discretised logistic alike.

Per epoch it prints: the test negative ELBO under the variant's likelihood (nats per image,
one posterior sample, as the peer), the hue read-out R^2 (src/evaluator/readout.rs: linear
least squares with an intercept from the test set's posterior means to cos and sin of
2 pi hue, fitted on the even test images and scored on the odd ones, mean of the two R^2),
the peer's colour error (mean |per-image mean colour of the reconstruction - of the input|
over the test set, per channel, in byte levels), the reconstruction RMSE (byte levels) and
the seconds the epoch took. Every epoch's figures are appended as one JSON line to
--log, and --png writes 16 test inputs above their reconstructions (from the means).

usage:
  python3 colour_arch.py --name baseline [--epochs 5] [--latent 10] [--seed 0]
      [--no-enc-norm] [--no-dec-norm] [--lik bernoulli|gauss|gauss-fixed|dlogistic]
      [--sigma 0.1] [--c1 64] [--full-conv] [--stem K] [--mean-colour] [--gap]
      [--bcast K --bcast-at first|last] [--colour-bias] [--png FILE] [--log FILE] [--npz FILE]
The data are made (and cached) by shapes_data.py beside this file.
"""
import argparse
import json
import math
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_data  # noqa: E402


class ConvVae(nn.Module):
    """The peer's conv VAE with switches; the defaults are the peer exactly."""

    def __init__(self, c, h, w, latent, hidden=256, enc_norm=True, dec_norm=True, c1=32,
                 full_conv=False, stem=0, mean_colour=False, gap=False, bcast=0,
                 bcast_at="first", colour_bias=False, lik="bernoulli", sigma=0.1):
        super().__init__()
        self.c, self.h, self.w = c, h, w
        self.h0, self.w0 = -(-h // 4), -(-w // 4)
        self.mean_colour, self.gap, self.bcast, self.bcast_at = mean_colour, gap, bcast, bcast_at
        self.lik = lik
        stemmed = []
        cin = c
        if stem:  # 1x1 conv: a per-pixel colour mixing at full resolution
            stemmed += [nn.Conv2d(cin, stem, 1), nn.ReLU()]
            cin = stem
        if full_conv:  # an extra stride-1 3x3 conv at full resolution
            stemmed += [nn.Conv2d(cin, 32, 3, 1, 1), nn.ReLU()]
            cin = 32
        self.conv = nn.Sequential(
            *stemmed,
            nn.Conv2d(cin, c1, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c1, 64, 4, 2, 1), *([nn.GroupNorm(8, 64)] if enc_norm else []), nn.ReLU())
        feat = 64 * (h // 4) * (w // 4) + (c if mean_colour else 0) + (64 if gap else 0)
        self.enc_dense = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU())
        self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.dec_in = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU())
        self.dec_map = nn.Sequential(nn.Linear(hidden, 64 * self.h0 * self.w0), nn.ReLU())
        if bcast:  # a small dense colour vector broadcast over a decoder map
            self.dec_colour = nn.Sequential(nn.Linear(hidden, bcast), nn.ReLU())
        first_in = 64 + (bcast if bcast and bcast_at == "first" else 0)
        last_in = 32 + (bcast if bcast and bcast_at == "last" else 0)
        self.up1 = nn.Sequential(nn.ConvTranspose2d(first_in, 32, 4, 2, 1),
                                 *([nn.GroupNorm(8, 32)] if dec_norm else []), nn.ReLU())
        out_c = 2 * c if lik == "dlogistic" else c
        self.up2 = nn.ConvTranspose2d(last_in, out_c, 4, 2, 1)
        # a per-image offset of each output channel, from the decoder's first hidden layer
        self.colour_bias = nn.Linear(hidden, c) if colour_bias else None
        if lik == "gauss":  # one learned log-scale per channel
            self.log_sigma = nn.Parameter(torch.zeros(c))
        else:
            self.register_buffer("log_sigma", torch.full((c,), math.log(sigma)))

    def encode(self, x):
        m = self.conv(x)
        parts = [m.flatten(1)]
        if self.mean_colour:
            parts.append(x.mean((2, 3)))
        if self.gap:
            parts.append(m.mean((2, 3)))
        hid = self.enc_dense(torch.cat(parts, 1))
        return self.mu(hid), self.logvar(hid)

    @staticmethod
    def _broadcast(v, m):
        return torch.cat([m, v[:, :, None, None].expand(-1, -1, m.shape[2], m.shape[3])], 1)

    def decode(self, z):
        d = self.dec_in(z)
        m = self.dec_map(d).view(-1, 64, self.h0, self.w0)
        colour = self.dec_colour(d) if self.bcast else None
        if self.bcast and self.bcast_at == "first":
            m = self._broadcast(colour, m)
        m = self.up1(m)
        if self.bcast and self.bcast_at == "last":
            m = self._broadcast(colour, m)
        out = self.up2(m)[:, :, :self.h, :self.w]
        if self.colour_bias is not None:  # onto the first c output channels (the means)
            bias = self.colour_bias(d)[:, :, None, None]
            out = torch.cat([out[:, :self.c] + bias, out[:, self.c:]], 1)
        return out

    def nll(self, out, x):
        """Negative log-likelihood per image of x (values in [0, 1], multiples of 1/255)."""
        if self.lik == "bernoulli":
            r = F.binary_cross_entropy_with_logits(out, x, reduction="none")
        elif self.lik in ("gauss", "gauss-fixed"):
            ls = self.log_sigma[None, :, None, None]
            r = 0.5 * ((x - out) / ls.exp()) ** 2 + ls + 0.5 * math.log(2 * math.pi)
        else:
            r = -discretised_logistic(x, *out.chunk(2, 1))
        return r.flatten(1).sum(1)

    def mean(self, out):
        """The reconstruction's expected pixel values in [0, 1] (for the logistic, its centre)."""
        if self.lik == "bernoulli":
            return torch.sigmoid(out)
        if self.lik == "dlogistic":
            return (out.chunk(2, 1)[0].clamp(-1, 1) + 1) / 2
        return out.clamp(0, 1)

    def forward(self, x, sample=True):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        out = self.decode(z)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)
        return self.nll(out, x), kl, out, mu


def discretised_logistic(x, mean, log_scale):
    """Log-probability of bytes x/255 under a logistic of `mean`, `log_scale` on [-1, 1],
    discretised into 256 bins, the two end bins taking the tails (PixelCNN++, one component)."""
    x = x * 2 - 1
    log_scale = log_scale.clamp(min=-7.0)
    inv = torch.exp(-log_scale)
    centred = x - mean
    plus, minus = inv * (centred + 1 / 255), inv * (centred - 1 / 255)
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    log_cdf_plus = plus - F.softplus(plus)          # log sigmoid(plus): the bottom bin
    log_one_minus_cdf_min = -F.softplus(minus)      # log (1 - sigmoid(minus)): the top bin
    mid = inv * centred
    log_pdf_mid = mid - log_scale - 2 * F.softplus(mid)  # for bins too narrow to difference
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)),
                        log_pdf_mid - math.log(127.5))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))


def readout_r2(mu, factor, circular=True):
    """The app's linear read-out score of one factor from the codes (readout.rs)."""
    n, d = mu.shape
    rows = np.concatenate([mu.astype(np.float64), np.ones((n, 1))], 1)
    fit, test = np.arange(0, n, 2), np.arange(1, n, 2)
    a = rows[fit].T @ rows[fit]
    a += 1e-6 * max(np.trace(a) / (d + 1), 1e-12) * np.eye(d + 1)
    targets = [np.cos(2 * np.pi * factor), np.sin(2 * np.pi * factor)] if circular else [factor]
    r2 = []
    for t in targets:
        w = np.linalg.solve(a, rows[fit].T @ t[fit])
        y, p = t[test], rows[test] @ w
        r2.append(1 - ((y - p) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    return float(np.mean(r2))


def write_png(path, img):
    """Writes an RGB uint8 [h, w, 3] array as a PNG (no imaging library needed)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def grid(inputs, recons, scale=3, gap=2):
    """Inputs in the top row, their reconstructions below, [n, h, w, 3] uint8 each."""
    n, h, w, _ = inputs.shape
    out = np.full((2 * h + 3 * gap, n * w + (n + 1) * gap, 3), 64, np.uint8)
    for i in range(n):
        x0 = gap + i * (w + gap)
        out[gap:gap + h, x0:x0 + w] = inputs[i]
        out[2 * gap + h:2 * gap + 2 * h, x0:x0 + w] = recons[i]
    return out.repeat(scale, 0).repeat(scale, 1)


def to_tensor(x):
    return torch.from_numpy(x.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


def evaluate(model, xte, fte):
    model.eval()
    c = xte.shape[1]
    with torch.no_grad():
        tot, n, cerr, sq, mus = 0.0, 0, torch.zeros(c), 0.0, []
        for i in range(0, len(xte), 500):
            x = xte[i:i + 500]
            rec, kl, out, mu = model(x)
            tot += (rec + kl).sum().item()
            n += len(x)
            m = model.mean(out)
            cerr += (m.mean((2, 3)) - x.mean((2, 3))).abs().sum(0)
            sq += ((m - x) ** 2).sum().item()
            mus.append(mu.numpy())
    mu = np.concatenate(mus)
    scores = {name: readout_r2(mu, fte[:, j], circular=name in ("hue", "rotation"))
              for j, name in enumerate(shapes_data.FACTOR_NAMES) if name != "shape"}
    return {"neg_elbo": tot / n, "colour_error": (cerr / n * 255).tolist(),
            "rmse": math.sqrt(sq / xte.numel()) * 255, "readout": scores}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="run")
    ap.add_argument("--npz", default=shapes_data.DEFAULT_PATH, help="made there if missing")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--latent", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--no-enc-norm", action="store_true", help="drop the encoder's GroupNorm")
    ap.add_argument("--no-dec-norm", action="store_true", help="drop the decoder's GroupNorm")
    ap.add_argument("--lik", default="bernoulli",
                    choices=["bernoulli", "gauss", "gauss-fixed", "dlogistic"])
    ap.add_argument("--sigma", type=float, default=0.1, help="gauss-fixed's scale (of [0, 1])")
    ap.add_argument("--c1", type=int, default=32, help="the encoder's first conv width")
    ap.add_argument("--full-conv", action="store_true",
                    help="an extra stride-1 3x3 conv (->32) ReLU at full resolution")
    ap.add_argument("--stem", type=int, default=0, help="a 1x1 conv (->K) ReLU stem")
    ap.add_argument("--mean-colour", action="store_true",
                    help="the input's per-image mean colour into the encoder's dense input")
    ap.add_argument("--gap", action="store_true",
                    help="the global average of the last conv map into the dense input")
    ap.add_argument("--bcast", type=int, default=0, help="decoder colour vector size")
    ap.add_argument("--bcast-at", default="first", choices=["first", "last"],
                    help="concatenate it before the first or the last transposed conv")
    ap.add_argument("--colour-bias", action="store_true",
                    help="add a dense per-image offset (hidden->C) to every output pixel")
    ap.add_argument("--png", help="16 test inputs above their reconstructions")
    ap.add_argument("--log", default="/tmp/colour_study/results.jsonl")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    d = shapes_data.load_or_make(a.npz)
    xtr, xte, fte = to_tensor(d["x_train"]), to_tensor(d["x_test"]), d["f_test"]
    _, c, h, w = xtr.shape
    model = ConvVae(c, h, w, a.latent, enc_norm=not a.no_enc_norm, dec_norm=not a.no_dec_norm,
                    c1=a.c1, full_conv=a.full_conv, stem=a.stem, mean_colour=a.mean_colour,
                    gap=a.gap, bcast=a.bcast, bcast_at=a.bcast_at,
                    colour_bias=a.colour_bias, lik=a.lik, sigma=a.sigma)
    params = sum(p.numel() for p in model.parameters())
    print(f"{a.name} seed {a.seed}: {params} parameters", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    g = torch.Generator().manual_seed(a.seed)
    history = []
    for ep in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), a.batch):
            rec, kl, _, _ = model(xtr[perm[i:i + a.batch]])
            loss = (rec + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        train_s = time.perf_counter() - t0
        e = evaluate(model, xte, fte)
        e.update(epoch=ep, train_s=train_s, seconds=time.perf_counter() - t0)
        history.append(e)
        r = e["readout"]
        print(f"epoch {ep} test_neg_elbo {e['neg_elbo']:.2f} hue_r2 {r['hue']:.3f} "
              f"colour_error {' '.join(f'{v:.1f}' for v in e['colour_error'])} "
              f"rmse {e['rmse']:.1f} x_r2 {r['x']:.2f} y_r2 {r['y']:.2f} scale_r2 {r['scale']:.2f} "
              f"({train_s:.1f} s train, {e['seconds']:.1f} s)", flush=True)
    if a.lik == "gauss":
        print("learned sigma", model.log_sigma.exp().tolist())
    if a.png:
        model.eval()
        with torch.no_grad():
            x = xte[:16]
            _, _, out, _ = model(x, sample=False)
            rec = (model.mean(out) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        write_png(a.png, grid(d["x_test"][:16], rec))
        print("wrote", a.png)
    if a.log:
        os.makedirs(os.path.dirname(a.log) or ".", exist_ok=True)
        with open(a.log, "a") as f:
            f.write(json.dumps({"name": a.name, "seed": a.seed, "args": vars(a),
                                "params": params, "history": history}) + "\n")


if __name__ == "__main__":
    main()
