"""Files: CXI scans and images, manifests, reference spectra, the run store, exports."""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports
from .cxi import read_projection, read_scan, read_scan_geometry, write_projection, write_scan

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .detector_mask import read_detector_mask
    from .fullfield import FullField, read_angles_file, read_data_exchange, read_field_file, read_tiff
    from .info import describe
    from .manifest import (
        check_references_cover,
        group_by_energy,
        read_manifest,
        read_references,
        scan_folder,
        write_manifest,
        write_references,
    )
    from .mrc import MRCStack, read_mrc, write_mrc
    from .references import read_reference_spectra, read_spectrum_table
    from .stxm import STXMStack, read_stxm, write_nxstxm, write_stxm_hdr

__all__ = [
    "read_scan", "read_scan_geometry", "write_scan", "read_projection", "write_projection",
    "read_manifest", "write_manifest", "scan_folder", "group_by_energy",
    "read_references", "write_references", "describe",
    "check_references_cover", "FullField", "read_data_exchange", "read_tiff", "read_field_file",
    "read_angles_file", "read_detector_mask", "STXMStack", "read_stxm", "write_stxm_hdr", "write_nxstxm",
    "read_reference_spectra", "read_spectrum_table", "MRCStack", "read_mrc", "write_mrc",
]

# One scan needs only the CXI reader and writer (``chemtomo ptycho SCAN.cxi``); the other
# formats (manifests, TIFF/Data Exchange, STXM, MRC, reference spectra) load on first use.
__getattr__, __dir__ = lazy_exports(__name__, {
    "read_detector_mask": ".detector_mask",
    **{name: ".fullfield" for name in ("FullField", "read_angles_file", "read_data_exchange", "read_field_file",
                                       "read_tiff")},
    "describe": ".info",
    **{name: ".manifest" for name in ("check_references_cover", "group_by_energy", "read_manifest",
                                      "read_references", "scan_folder", "write_manifest", "write_references")},
    **{name: ".mrc" for name in ("MRCStack", "read_mrc", "write_mrc")},
    **{name: ".references" for name in ("read_reference_spectra", "read_spectrum_table")},
    **{name: ".stxm" for name in ("STXMStack", "read_stxm", "write_nxstxm", "write_stxm_hdr")},
})
