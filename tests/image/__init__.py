"""The operator's image: built from the Dockerfile with buildah, run as the Deployment runs it."""

from .build import Image, build_image
from .container import Container, sweep, write_credentials
from .engine import ensure_tools

__all__ = ["Container", "Image", "build_image", "ensure_tools", "sweep", "write_credentials"]
