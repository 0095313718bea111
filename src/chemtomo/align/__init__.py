"""chemtomo.align"""
__all__: list[str] = []
