"""The numba loops behind models.kernels (read that module's docstring first). A module of their
own so that only a process that runs the kernel imports numba, whose import and first call (which
loads the cached machine code) are a noticeable part of a short job."""

import numba
import numpy as np
import torch
from numba import njit, prange

CLIPPED = np.uint8(4)  # "argmax" of an output that ReLU set to 0: no gradient flows back


@njit(parallel=True, cache=True, fastmath={"contract"})
def forward(xe, xo, w, b, height, width, relu, out, arg):
    # xe, xo (B, 2Hp+2, Wp+1): the zero-padded image's even and odd columns, so every one of a
    # window's four positions (phase dy*2+dx) reads contiguous rows. w (C, 9), b (C,).
    # out (B, Hp, Wp, C) float32; arg (B, Hp, C, Wp) uint8, the winning phase or CLIPPED, in the
    # loop's own order (only backward reads it), so that only `out` needs transposing.
    n_img, out_h, out_w, n_ch = out.shape
    # Windows j >= width // 2 have no second column (odd width, ceil mode). A byte per window,
    # not `j < width // 2` in the loop: the table costs the loop less than comparing the 64-bit j
    # lane by lane (docs/benchmarks.md, the first block's forward).
    wide_at = np.arange(out_w) < width // 2
    for n in prange(n_img):
        tile = np.empty((n_ch, out_w), np.float32)  # one output row, channel-major, then transposed
        for i in range(out_h):
            y = 2 * i
            two = y + 1 < height  # the window has a second row (not so at an odd height's end)
            e0, e1, e2, e3 = xe[n, y], xe[n, y + 1], xe[n, y + 2], xe[n, y + 3]
            o0, o1, o2, o3 = xo[n, y], xo[n, y + 1], xo[n, y + 2], xo[n, y + 3]
            for c in range(n_ch):
                w0, w1, w2 = w[c, 0], w[c, 1], w[c, 2]  # the kernel's rows
                w3, w4, w5 = w[c, 3], w[c, 4], w[c, 5]
                w6, w7, w8 = w[c, 6], w[c, 7], w[c, 8]
                bc = b[c]
                for j in range(out_w):
                    a0, a1, a2, a3 = e0[j], o0[j], e0[j + 1], o0[j + 1]  # padded row y, columns 2j..2j+3
                    b0, b1, b2, b3 = e1[j], o1[j], e1[j + 1], o1[j + 1]
                    c0, c1, c2, c3 = e2[j], o2[j], e2[j + 1], o2[j + 1]
                    d0, d1, d2, d3 = e3[j], o3[j], e3[j + 1], o3[j + 1]
                    v00 = bc + w0 * a0 + w1 * a1 + w2 * a2 + w3 * b0 + w4 * b1 + w5 * b2 + w6 * c0 + w7 * c1 + w8 * c2
                    v01 = bc + w0 * a1 + w1 * a2 + w2 * a3 + w3 * b1 + w4 * b2 + w5 * b3 + w6 * c1 + w7 * c2 + w8 * c3
                    v10 = bc + w0 * b0 + w1 * b1 + w2 * b2 + w3 * c0 + w4 * c1 + w5 * c2 + w6 * d0 + w7 * d1 + w8 * d2
                    v11 = bc + w0 * b1 + w1 * b2 + w2 * b3 + w3 * c1 + w4 * c2 + w5 * c3 + w6 * d1 + w7 * d2 + w8 * d3
                    # Selects, not branches, so that the loop vectorizes; a window's positions
                    # beyond the image (odd sizes, ceil mode) never win.
                    wide = wide_at[j]
                    best, k = v00, np.uint8(0)
                    t = ((v01 > best) | (v01 != v01)) & wide
                    best, k = (v01 if t else best), (np.uint8(1) if t else k)
                    t = ((v10 > best) | (v10 != v10)) & two
                    best, k = (v10 if t else best), (np.uint8(2) if t else k)
                    t = ((v11 > best) | (v11 != v11)) & two & wide
                    best, k = (v11 if t else best), (np.uint8(3) if t else k)
                    clip = relu & (best <= 0)  # relu's gradient, as torch's: 0 at 0, 1 at NaN
                    tile[c, j] = np.float32(0.0) if clip else best
                    arg[n, i, c, j] = CLIPPED if clip else k
            for j in range(out_w):
                for c in range(n_ch):
                    out[n, i, j, c] = tile[c, j]


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def backward(xe, xo, grad, arg, dw, db):
    # grad (B, Hp, Wp, C), the pooled output's gradient; arg (B, Hp, C, Wp) from forward.
    # dw (B, C, 9) and db (B, C): per-image sums (the caller adds them up), so that no two
    # threads write one number.
    n_img, out_h, out_w, n_ch = grad.shape
    for n in prange(n_img):
        tile = np.empty((n_ch, out_w), np.float32)
        for i in range(out_h):
            for j in range(out_w):
                for c in range(n_ch):
                    tile[c, j] = grad[n, i, j, c]
            y = 2 * i
            e0, e1, e2, e3 = xe[n, y], xe[n, y + 1], xe[n, y + 2], xe[n, y + 3]
            o0, o1, o2, o3 = xo[n, y], xo[n, y + 1], xo[n, y + 2], xo[n, y + 3]
            for c in range(n_ch):
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = sb = np.float32(0.0)
                for j in range(out_w):
                    k, z = arg[n, i, c, j], np.float32(0.0)
                    g = z if k == CLIPPED else tile[c, j]
                    g00, g01 = (g if k == 0 else z), (g if k == 1 else z)  # the gradient of each phase
                    g10, g11 = (g if k == 2 else z), (g if k == 3 else z)
                    a0, a1, a2, a3 = e0[j], o0[j], e0[j + 1], o0[j + 1]
                    b0, b1, b2, b3 = e1[j], o1[j], e1[j + 1], o1[j + 1]
                    c0, c1, c2, c3 = e2[j], o2[j], e2[j + 1], o2[j + 1]
                    d0, d1, d2, d3 = e3[j], o3[j], e3[j + 1], o3[j + 1]
                    sb += g
                    s0 += g00 * a0 + g01 * a1 + g10 * b0 + g11 * b1
                    s1 += g00 * a1 + g01 * a2 + g10 * b1 + g11 * b2
                    s2 += g00 * a2 + g01 * a3 + g10 * b2 + g11 * b3
                    s3 += g00 * b0 + g01 * b1 + g10 * c0 + g11 * c1
                    s4 += g00 * b1 + g01 * b2 + g10 * c1 + g11 * c2
                    s5 += g00 * b2 + g01 * b3 + g10 * c2 + g11 * c3
                    s6 += g00 * c0 + g01 * c1 + g10 * d0 + g11 * d1
                    s7 += g00 * c1 + g01 * c2 + g10 * d1 + g11 * d2
                    s8 += g00 * c2 + g01 * c3 + g10 * d2 + g11 * d3
                dw[n, c, 0] += s0
                dw[n, c, 1] += s1
                dw[n, c, 2] += s2
                dw[n, c, 3] += s3
                dw[n, c, 4] += s4
                dw[n, c, 5] += s5
                dw[n, c, 6] += s6
                dw[n, c, 7] += s7
                dw[n, c, 8] += s8
                db[n, c] += sb


def match_torch_threads() -> None:
    # As many numba threads as torch uses, so that the two never oversubscribe the cores. numba's
    # OpenMP layer binds to the libgomp torch loaded, and starting its pool (on the first call)
    # sets that runtime's thread count to all cores, torch's included: put torch's back.
    threads = torch.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
