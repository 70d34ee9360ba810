"""Only what pyproject.toml cannot say: the packages, with the Lambda handlers in functions/
shipped inside the wheel as `mlops_kit._functions` (and the Azure Functions app in
functions/azure as `mlops_kit._functions.azure`): the emulators and `mlops-kit invoke` load them
from there when there is no ./functions. Everything else is in pyproject.toml.

A build context without functions/ (the training image stages src/ only) gets the package
alone; without this file at all, setuptools' src-layout discovery finds the same packages."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
packages, package_dir = find_packages("src"), {"": "src"}
if (HERE / "functions" / "serve.py").is_file():
    packages.append("mlops_kit._functions")
    package_dir["mlops_kit._functions"] = "functions"
if (HERE / "functions" / "azure" / "function_app.py").is_file():  # `emulate --cloud azure`
    packages.append("mlops_kit._functions.azure")
    package_dir["mlops_kit._functions.azure"] = "functions/azure"

setup(packages=packages, package_dir=package_dir)  # package data: pyproject.toml
