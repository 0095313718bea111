"""Which kind of data a manifest lists: scans, reconstructed projections, intensity or OD images.

The kinds (``[input] kind``):

- ``scans``       CXI ptychography scans (``/entry_1/data_1/data``): the run starts with ptychography
- ``projections`` reconstructed complex transmissions in the CXI image convention
                  (``/entry_1/image_1/data``): chemtomo's own ``chemtomo ptycho`` output, ALS COSMIC
                  and other codes' CXI images
- ``intensity``   full-field images with flat and dark fields (Data Exchange HDF5 or TIFF)
- ``od``          ready optical-density images (Data Exchange HDF5 ``/exchange/data`` or TIFF)

``auto`` detects the kind from the files: a CXI scan or image says so; full-field files are
intensity data when they come with flat fields (``/exchange/data_white`` or a ``flat`` column),
and are refused otherwise, because intensity without flats and OD look alike.
"""

from __future__ import annotations

from ..core.containers import ScanRef
from ..core.errors import InputError
from ._h5 import open_h5
from .fullfield import DX_WHITE, file_format

__all__ = ["KINDS", "input_kind"]

KINDS = ("scans", "projections", "intensity", "od")

_DESCRIBE = {
    "scan": "CXI ptychography scan (/entry_1/data_1/data)",
    "image": "CXI reconstructed image (/entry_1/image_1/data)",
    "dx": "Data Exchange file (/exchange/data)",
    "tiff": "TIFF image(s)",
    "xrm": "Xradia .txrm/.xrm file",
}
_FORMATS = {"scans": ("scan",), "projections": ("image",), "intensity": ("dx", "tiff", "xrm"), "od": ("dx", "tiff", "xrm")}


def _has_flats(ref: ScanRef, fmt: str) -> bool:
    if ref.flat:
        return True
    if fmt == "xrm":
        from .xradia import read_xradia

        return read_xradia(ref.path).flats is not None
    if fmt != "dx":
        return False
    with open_h5(ref.path) as f:
        return DX_WHITE in f


def input_kind(refs: list[ScanRef], kind: str = "auto", *, where: str = "manifest") -> tuple[str, str]:
    """The kind of data ``refs`` list, and a one-line description of what was found.

    Parameters
    ----------
    refs : the manifest's rows
    kind : the configured kind, or "auto" to detect it from the files
    where : the manifest (or folder), for messages

    Raises
    ------
    InputError
        Two files of different kinds (naming both), a file that does not match the configured
        kind, or (auto) full-field files without flat fields.
    """
    if kind not in KINDS + ("auto",):
        raise InputError(f"input.kind = {kind!r}; expected one of auto, {', '.join(KINDS)}")
    if not refs:
        raise InputError(f"{where}: lists no files")
    formats = [file_format(r.path) for r in refs]
    found: dict[str, tuple[str, ScanRef]] = {}
    for ref, fmt in zip(refs, formats):
        if fmt in ("dx", "tiff", "xrm"):
            group = "fullfield"
        else:
            group = fmt
        if found and group not in found:
            other, first = next(iter(found.values()))
            raise InputError(f"{where}: mixes kinds of input: {first.path} is a {_DESCRIBE[other]} but {ref.path} is "
                             f"a {_DESCRIBE[fmt]}; a run takes one kind")
        found.setdefault(group, (fmt, ref))
    fmt0 = formats[0]
    counts = {f: formats.count(f) for f in dict.fromkeys(formats)}
    what = " and ".join(f"{n} × {_DESCRIBE[f]}" for f, n in counts.items())
    if kind == "auto":
        if fmt0 == "scan":
            kind = "scans"
        elif fmt0 == "image":
            kind = "projections"
        else:
            without = [r for r, f in zip(refs, formats) if not _has_flats(r, f)]
            if without:
                raise InputError(f"{where}: found full-field data without flat fields ({without[0].path}: no "
                                 f"/{DX_WHITE} and no flat column); set [input] kind = \"od\" if the images hold "
                                 "optical density, or give the flat fields (manifest column flat)")
            kind = "intensity"
        return kind, f"{what}: detected input kind '{kind}'"
    for ref, fmt in zip(refs, formats):
        if fmt not in _FORMATS[kind]:
            raise InputError(f"{ref.path}: input.kind is '{kind}' but the file is a {_DESCRIBE[fmt]}; expected "
                             + " or ".join(_DESCRIBE[f] for f in _FORMATS[kind]))
    return kind, f"{what}: input kind '{kind}' (configured)"

