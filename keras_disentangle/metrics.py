"""Scores of representations (NumPy / scikit-learn). Filled by issue 3."""
