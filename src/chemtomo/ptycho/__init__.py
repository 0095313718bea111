"""chemtomo.ptycho"""
__all__: list[str] = []
