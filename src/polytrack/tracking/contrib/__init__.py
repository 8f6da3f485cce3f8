"""Polyaxon's contrib callbacks (`polyaxon.tracking.contrib.<framework>`), with Polyaxon's
class names and constructor arguments, built on `polytrack.integrations`.

    from polytrack.tracking.contrib.keras import PolyaxonKerasCallback   # was: polyaxon.
"""
