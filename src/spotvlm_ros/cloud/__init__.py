"""The cloud path: OpenAI-compatible client, grounding parsers, the local server."""

# The model name the local cloud server serves, and clients ask for, unless told otherwise:
# the trained default cloud model (share.DEFAULT_CLOUD_CHECKPOINT), as config/spotvlm.yaml names it.
DEFAULT_CLOUD_MODEL = 'spotvlm-cloud'
DEFAULT_PORT = 8000
LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1')
