"""Every node's parameters as data (no rclpy): dataclasses with defaults, descriptions, checks."""

from __future__ import annotations

from dataclasses import dataclass

from spotvlm_ros.cloud.client import CloudClientConfig
from spotvlm_ros.core.checks import (
    boolean, non_empty, non_negative, non_negative_int, one_of, positive, positive_int)
from spotvlm_ros.core.composition import CONTEXT_TRANSFER, NODE_STRATEGIES
from spotvlm_ros.core.context import ContextConfig
from spotvlm_ros.core.focus import FocusConfig
from spotvlm_ros.core.keyframes import KeyframeConfig
from spotvlm_ros.core.settings import check_settings, setting
from spotvlm_ros.models.factory import KINDS as MODEL_KINDS
from spotvlm_ros.share import DEFAULT_CALIBRATION, DEFAULT_EDGE_CHECKPOINT

SOURCE_KINDS = ('folder', 'video', 'camera', 'bag')
IMAGE_TRANSPORTS = ('raw', 'compressed')  # as image_transport names them
DEFAULT_QUERY = 'What should the ego vehicle do now?'


class Settings:
    """A parameter group: its fields' checks run when it is built."""

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class CameraInputConfig(Settings):
    """How a node reads the camera."""

    image_transport: str = setting(
        'raw', 'raw: sensor_msgs/Image on `image`; compressed: CompressedImage (JPEG/PNG) on '
        '`image/compressed`, as a vehicle camera streams', one_of(IMAGE_TRANSPORTS))
    image_reliable: bool = setting(
        False, 'subscribe to images as reliable (false: best effort, which any publisher '
        'serves)', boolean)


@dataclass(frozen=True)
class SourceConfig(Settings):
    """Where image_source reads frames."""

    kind: str = setting('bag', 'bag, folder, video or camera', one_of(SOURCE_KINDS))
    path: str = setting('', 'bag folder, image folder, video file, or camera index / stream URL '
                            '(required)', non_empty)
    image_topic: str = setting(
        '', 'the image topic inside the bag (Image or CompressedImage); empty: the bag\'s only '
        'image topic (a bag with several names them in its error)')


@dataclass(frozen=True)
class ImageSourceConfig(Settings):
    """How image_source paces and publishes frames."""

    rate_hz: float = setting(10.0, 'frames per second from a folder, video or camera',
                             positive)
    rate_factor: float = setting(1.0, 'bag playback speed (2.0: twice as fast)', positive)
    loop: bool = setting(False, 'start again at the end (otherwise the node exits: '
                                '`spotvlm run` then stops)', boolean)
    frame_id: str = setting('camera', 'header.frame_id of published images')
    restamp: bool = setting(True, 'stamp frames at publish time (false: the recorded stamps)',
                            boolean)
    passthrough: bool = setting(
        True, "republish the bag's other topics (ground truth); when restamping, a message with "
        'a header gets the stamp of the frame recorded at the same time', boolean)
    publish_compressed: bool = setting(False, 'also publish image/compressed (JPEG)', boolean)
    image_reliable: bool = setting(
        False, 'publish images as reliable (false: best effort, as a camera driver does)',
        boolean)
    wait_for_subscribers: int = setting(
        0, 'hold the first frame until this many image subscribers match (`spotvlm run` sets '
        'it)')
    wait_timeout_s: float = setting(
        30.0, 'seconds to hold the first frame for them; then it starts with fewer and warns')


@dataclass(frozen=True)
class EdgeNodeConfig(CameraInputConfig):
    """What edge_node answers, and how."""

    query: str = setting(DEFAULT_QUERY, 'standing question asked about every frame; change it '
                                        'at run time on the `query` topic')
    strategy: str = setting(CONTEXT_TRANSFER, 'what the edge model is given besides the '
                            'frame (cloud_latest: the model does not answer, the newest cloud '
                            'answer about the query does; none yet, no answer; offload: see '
                            'offload.deadline_s; edge_own_history reads only its own turns, '
                            'which cloud answers replace in the fuser: run it without a '
                            'bridge): ' + ', '.join(NODE_STRATEGIES),
                            one_of(NODE_STRATEGIES))
    auto_activate: bool = setting(True, 'configure (load the model) and activate at start',
                                  boolean)


@dataclass(frozen=True)
class EdgeModelConfig(Settings):
    """The edge model edge_node loads."""

    kind: str = setting('transformers', 'backend: ' + ' or '.join(MODEL_KINDS),
                        one_of(MODEL_KINDS))
    path: str = setting(
        DEFAULT_EDGE_CHECKPOINT, "checkpoint folder, package://PKG/path (the trained default "
        "edge model in the package's share directory) or hub id (local cache only unless "
        "downloads are allowed); 'tiny' builds a random-weight model, for tests only")
    device: str = setting('auto', "auto, cpu, cuda or cuda:N (auto: cuda when a GPU is "
                                  "visible, else cpu)")
    dtype: str = setting('auto', 'auto, float32, float16 or bfloat16 (auto: bf16/fp16 on a '
                                 'GPU, fp32 on the CPU)')
    max_new_tokens: int = setting(24, 'tokens the model may write per answer', positive_int)
    threads: int = setting(
        0, "CPU threads of the model's inference (torch, ONNX Runtime); 0: the library's "
        'default, one per core, which contends with the other nodes on a small computer',
        non_negative_int)
    system_prompt: str = setting('', "system prompt; empty: the backend's default")


@dataclass(frozen=True)
class EdgeContextConfig(Settings):
    """How old a fused context edge_node still uses."""

    max_age_s: float = setting(
        10.0, 'seconds; a fused context fused for a frame this much older than the answered '
        'one (the fuser died), or whose turns or regions are older, is not used; diagnostics '
        'WARN `context stale`', positive)


@dataclass(frozen=True)
class EdgeAutoConfig(Settings):
    """What strategy auto reads to choose each frame's source."""

    calibration: str = setting(
        DEFAULT_CALIBRATION, 'its table of expected accuracy per source, question and context '
        'age (spotvlm calibrate; package://PKG/path or a file); read only by strategy auto')
    wait: bool = setting(
        True, 'auto may wait for the cloud: where its table expects the cloud\'s answer on this '
        'very frame to score best, the last round trip met deadline_s (or none is known yet) '
        'and a bridge listens on cloud_request, it asks for the frame, answers meanwhile from the '
        'best other source, and gives the cloud\'s reply if it is back by the deadline, else '
        'that answer then', boolean)
    deadline_s: float = setting(1.0, "seconds after a frame's stamp that a wait may last",
                                positive)


@dataclass(frozen=True)
class EdgeOffloadConfig(Settings):
    """How long strategy offload waits for the cloud's answer on a frame."""

    deadline_s: float = setting(
        1.0, "seconds after a frame's stamp; offload asks the bridge (cloud_request) for the "
        'frame when the last round trip met it and a bridge listens, else the edge model '
        'answers at once; a reply not back by then, or a failure, and the edge model answers '
        'the frame then; read only by strategy offload', positive)


@dataclass(frozen=True)
class EdgeDiagnosticsConfig(Settings):
    """edge_node's /diagnostics thresholds."""

    inference_warn_s: float = setting(2.0, 'inference p95 (s) at which the status is WARN')
    inference_error_s: float = setting(10.0, 'inference p95 (s) at which the status is ERROR')
    drop_ratio_warn: float = setting(0.9, 'dropped / received frames above which the status '
                                          'is WARN')
    stage_times: bool = setting(False, "publish each answer's stage times on ~/stage_times "
                                       '(benchmarks)', boolean)


@dataclass(frozen=True)
class CloudBridgeConfig(CameraInputConfig):
    """What cloud_bridge asks."""

    query: str = setting(DEFAULT_QUERY, 'question sent with every keyframe')
    request_ring_size: int = setting(
        10, "recent frames held for the edge node's cloud_request (auto's waits); 0: requests "
        'are not served', non_negative_int)


@dataclass(frozen=True)
class BridgeDiagnosticsConfig(Settings):
    """cloud_bridge's /diagnostics thresholds."""

    round_trip_warn_s: float = setting(6.0, 'cloud round trip p95 (s) at which the status is '
                                            'WARN')
    round_trip_error_s: float = setting(15.0, 'cloud round trip p95 (s) at which the status '
                                              'is ERROR')


@dataclass(frozen=True)
class ContextFuserConfig(CameraInputConfig):
    """How context_fuser keeps frames and publishes."""

    tokenizer: str = setting(
        '', "the edge model's checkpoint ('tiny' or a folder; `spotvlm run` sets the edge's "
        'model.path): context.budget_tokens counts its tokens (tokenizer files only); empty: '
        'words')
    frame_ring_size: int = setting(
        100, 'recent frames kept (at flow size) to carry regions from a keyframe by optical '
        'flow; cover context.max_age_s at the camera rate', positive_int)
    min_publish_period_s: float = setting(
        0.1, 'seconds; fused contexts for new frames at most this often (every cloud reply '
        'publishes at once)', non_negative)


@dataclass(frozen=True)
class FuserDiagnosticsConfig(Settings):
    """context_fuser's /diagnostics thresholds."""

    context_age_warn_s: float = setting(
        8.0, 'context age (or time without any) in s at which the status is WARN')
    context_age_error_s: float = setting(
        30.0, 'context age (or time without any) in s at which the status is ERROR')


# node -> its parameter groups: (prefix, config class); '' is the node's own top level.
NODE_PARAMETERS = {
    'image_source': (('source', SourceConfig), ('', ImageSourceConfig)),
    'edge_node': (('', EdgeNodeConfig), ('model', EdgeModelConfig), ('focus', FocusConfig),
                  ('context', EdgeContextConfig), ('auto', EdgeAutoConfig),
                  ('offload', EdgeOffloadConfig), ('diagnostics', EdgeDiagnosticsConfig)),
    'cloud_bridge': (('', CloudBridgeConfig), ('cloud', CloudClientConfig),
                     ('keyframe', KeyframeConfig), ('diagnostics', BridgeDiagnosticsConfig)),
    'context_fuser': (('', ContextFuserConfig), ('context', ContextConfig),
                      ('focus', FocusConfig), ('diagnostics', FuserDiagnosticsConfig)),
}
