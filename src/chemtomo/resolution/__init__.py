"""chemtomo.resolution"""
__all__: list[str] = []
