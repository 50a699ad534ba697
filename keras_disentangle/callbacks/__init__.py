"""Keras callbacks: representation scores written into ``logs``, weight ramps
and centroid re-initialisation."""
