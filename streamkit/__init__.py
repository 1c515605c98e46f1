"""streamkit: serverless-style processor functions on Apache Kafka."""

from streamkit.errors import StreamkitError
from streamkit.settings import Settings

__version__ = "0.1.0"

__all__ = ["Settings", "StreamkitError", "__version__"]
