"""Primitives shared by losses, visualisations and tests: one place for each idea.

* :mod:`kdlab.core.levels` — FPN level pairing of teacher and student.
"""
