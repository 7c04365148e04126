"""What the launch file starts for its arguments, as plain data (launch_ros is not needed to test it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from spotvlm_ros.cloud import DEFAULT_CLOUD_MODEL, DEFAULT_PORT
from spotvlm_ros.nodes.settings import IMAGE_TRANSPORTS

CLOUD_CHOICES = ('local', 'none')  # or an http(s):// URL of an OpenAI-compatible endpoint
IMAGE_READERS = ('context_fuser', 'edge_node', 'cloud_bridge')


@dataclass
class Process:
    """One process: a ROS node of this package (params file, namespace) or a plain executable."""

    executable: str
    params: dict = field(default_factory=dict)
    remappings: list = field(default_factory=list)
    arguments: list = field(default_factory=list)
    is_node: bool = True


def plan(cloud: str = 'local', bag: str = '', camera: str = '', image_transport: str = 'raw',
         use_source: bool = True, trace: str = '') -> list:
    """The processes for these launch arguments; ValueError names a bad one.

    cloud: 'local' starts the local cloud server (the trained cloud model) on loopback,
    'none' no bridge at all, a URL points the bridge there. camera: a driver's image topic,
    read instead of starting image_source; without it image_source plays `bag`.
    """
    if cloud not in CLOUD_CHOICES and not cloud.startswith(('http://', 'https://')):
        raise ValueError(f"cloud:={cloud!r}: use local, none or an http(s):// URL")
    if image_transport not in IMAGE_TRANSPORTS:
        raise ValueError(f"image_transport:={image_transport!r}: use raw or compressed")
    if not camera and use_source and not bag:
        raise ValueError('bag:= is empty and no camera:= topic is given: nothing to answer')
    readers = {'image_transport': image_transport}
    # A driver's topic: raw images on it, compressed ones on its /compressed sub-topic.
    remaps = []
    if camera:
        remaps = [('image/compressed' if image_transport == 'compressed' else 'image',
                   f'{camera}/compressed' if image_transport == 'compressed' else camera)]
    procs = [Process('context_fuser', dict(readers), list(remaps)),
             Process('edge_node', dict(readers), list(remaps))]
    if cloud != 'none':
        bridge = dict(readers)
        if cloud == 'local':
            bridge.update({'cloud.base_url': f'http://127.0.0.1:{DEFAULT_PORT}/v1',
                           'cloud.model': DEFAULT_CLOUD_MODEL, 'cloud.api_key_env': ''})
            args = ['--port', str(DEFAULT_PORT), '--log-level', 'WARNING']
            procs.append(Process('cloud_server', is_node=False,
                                 arguments=args + (['--trace', trace] if trace else [])))
        else:
            bridge['cloud.base_url'] = cloud
        procs.append(Process('cloud_bridge', bridge, list(remaps)))
    if use_source and not camera:
        source = {'source.kind': 'bag', 'source.path': bag}
        if image_transport == 'compressed':
            source['publish_compressed'] = True
        procs.append(Process('image_source', source))
    return procs
