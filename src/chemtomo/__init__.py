"""chemtomo: soft X-ray ptychographic spectro-tomography to 3D chemical-state maps."""
__version__ = "0.2.0"
