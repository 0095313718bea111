"""chemtomo.chem"""
__all__: list[str] = []
