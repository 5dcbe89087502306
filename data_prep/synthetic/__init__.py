"""Procedurally rendered walking silhouettes in the CASIA-B layout."""
