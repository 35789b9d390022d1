"""Packages of the distribution; everything else is in pyproject.toml.

Here only because pyproject.toml cannot list found packages *and* one more mapped from another
folder: ``resources/`` (the demo model, reference cohort, logo, icons) stays at the repository's
top level and is installed as the package ``hoechstscore_resources`` (core/resources.py reads it
with importlib.resources), in an editable install and a wheel alike.
"""

from setuptools import find_namespace_packages, setup

# resources/ and its folders (plain data folders; setuptools counts each as a namespace package).
RESOURCES = ["hoechstscore_resources", *(f"hoechstscore_resources.{p}" for p in find_namespace_packages("resources"))]

setup(
    packages=[*find_namespace_packages(include=["core*", "app*", "training*"]), *RESOURCES],
    package_dir={"hoechstscore_resources": "resources"},
)
