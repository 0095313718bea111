"""chemtomo: soft X-ray ptychographic spectro-tomography to 3D chemical-state maps."""

import os as _os

# OpenMP worker threads (numba's "omp" threading layer) spin after every parallel kernel by
# default, taking the CPU from the FFT threads that run next: on the 2-core development machine a
# RAAR iteration's CPU cost fell from 2.0x to 1.6x the FFT floor with passive waiting, and the
# paper preset's energy registration from 10.2-11.9 s to 8.7-9.0 s. Set here, before any chemtomo
# module can load OpenMP, so that every kernel (ptychography, tomography, alignment) gets it; only
# a default: an explicit OMP_WAIT_POLICY is kept, and it acts only if OpenMP is not loaded yet.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"
