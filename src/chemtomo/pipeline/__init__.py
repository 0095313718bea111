"""chemtomo.pipeline"""
__all__: list[str] = []
