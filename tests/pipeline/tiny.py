"""The tiny simulated dataset's definition, importable by name (conftest modules are not: with
several test folders on sys.path, ``import conftest`` finds whichever comes first)."""

#: Small enough that a whole run takes seconds: 9 angles, 2 energies, a (21, 33, 33) volume with
#: 3 plates, frames of 32². Alignment, reconstruction and chemistry all run for real. SIRT runs 200
#: iterations so that each block of slices takes ~0.1 s: the resume test must be able to kill the
#: run between two finished blocks, whatever the machine's speed. The local workers are threads:
#: `make test` runs two test processes on two cores already, and two worker processes per run cost
#: each tiny run 1.6 s more CPU (session 35). Worker processes, the command's default on two cores,
#: are tested by test_local_processes.py, test_dask.py, test_cluster.py and the demo.
TINY = dict(shape=(21, 33, 33), n_particles=3, frame_px=32, probe_diameter_m=150e-9,
            angles_deg=[-80.0, -60.0, -40.0, -20.0, 0.0, 20.0, 40.0, 60.0, 77.0])

TINY_CONFIG = """
[input]
manifest = "manifest.csv"
[ptycho]
algorithm = "RAAR:30"
frc = false
frc_angles = 1
[align]
method = "coarse"
[tomo]
algorithm = "sirt"
iterations = 200
block_slices = 3
[compute]
processes = "off"
"""
