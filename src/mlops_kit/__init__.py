"""mlops-kit: a serverless, cloud-agnostic MLOps kit."""

__version__ = "0.1.0"
__all__ = ["__version__"]
