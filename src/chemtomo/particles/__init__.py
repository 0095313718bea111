"""chemtomo.particles"""
__all__: list[str] = []
