"""Draw docs/_static/demo_overview.png (the README's and the front page's figure) from a demo run.

Usage: python docs/_scripts/demo_overview.py demo-run/run.zarr docs/_static/demo_overview.png
(after ``make demo``). Four panels: a projection's OD, a slice of μ at the first energy, the
FePO4 fraction and the voxel classes on the slice with the most sample, cropped
to the sample; the classes in the report's colours (red LiFePO4-rich, green mixed, blue FePO4-rich).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from chemtomo.io.store import RunStore  # noqa: E402


def main(store_path: str, out: str) -> None:
    store = RunStore(store_path, create=False)
    energy = sorted(store.arrays("volumes"), key=float)[0]
    proj = store.read(f"projections/{energy}")
    mu = store.read(f"volumes/{energy}")
    x_fp = store.read("chem/fraction")
    classes = store.read("chem/labels")
    voxel_nm = store.group_attrs("volumes")["voxel_m"] * 1e9
    y = int(np.argmax(np.isfinite(x_fp).sum(axis=(1, 2))))
    zz, xx = np.nonzero(np.isfinite(x_fp[y]))
    m = 6  # voxels of margin around the sample
    zs = slice(max(zz.min() - m, 0), zz.max() + m + 1)
    xs = slice(max(xx.min() - m, 0), xx.max() + m + 1)
    mu, x_fp, classes = mu[y, zs, xs], x_fp[y, zs, xs], classes[y, zs, xs]
    fig, ax = plt.subplots(1, 4, figsize=(14, 3.6), constrained_layout=True)
    mid = proj.shape[0] // 2
    ext = lambda a, z0=0, x0=0: (x0 * voxel_nm, (x0 + a.shape[-1]) * voxel_nm, (z0 + a.shape[-2]) * voxel_nm, z0 * voxel_nm)  # noqa: E731
    ax[0].imshow(-np.log(np.abs(proj[mid]) ** 2), cmap="gray", extent=ext(proj[mid]))
    ax[0].set_title(f"ptychographic projection, OD at {energy} eV")
    im = ax[1].imshow(mu * 1e-6, cmap="gray", extent=ext(mu, zs.start, xs.start))
    ax[1].set_title(f"μ at {energy} eV, slice y = {y}")
    fig.colorbar(im, ax=ax[1], shrink=0.8, label="μ (1/µm)")
    im = ax[2].imshow(x_fp, vmin=0, vmax=1, cmap="coolwarm_r", extent=ext(x_fp, zs.start, xs.start))
    ax[2].set_title(f"FePO4 fraction, slice y = {y}")
    fig.colorbar(im, ax=ax[2], shrink=0.8)
    cmap = ListedColormap(["white", "tab:red", "tab:green", "tab:blue"])
    ax[3].imshow(classes, vmin=0, vmax=3, cmap=cmap, interpolation="nearest", extent=ext(classes, zs.start, xs.start))
    ax[3].set_title("classes: LFP-rich, mixed, FP-rich")
    for a in ax:
        a.set_xlabel("x (nm)")
    ax[0].set_ylabel("y (nm)")
    for a in ax[1:]:
        a.set_ylabel("z (nm)")
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:3])
