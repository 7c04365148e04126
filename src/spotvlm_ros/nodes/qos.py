"""The QoS profiles of every topic, in one place (documented in the README)."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)


def image_qos(reliable: bool = False) -> QoSProfile:
    """Camera images: sensor data (best effort, keep last 5) unless told reliable."""
    if not reliable:
        return qos_profile_sensor_data
    return QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)


# Cloud contexts: every reply matters, however late; a late-joining fuser gets the last few.
CLOUD_CONTEXT_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                               reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Fused context: only the newest matters; a restarted edge node gets it at once.
FUSED_CONTEXT_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                               reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
# The edge node's requests for one frame's cloud answer: each is a wait; none may be lost.
CLOUD_REQUEST_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                               reliability=ReliabilityPolicy.RELIABLE)
# Answers: planners must not miss one.
ANSWER_QOS = QoSProfile(depth=20, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE)
# A bag's other topics (ground truth): reliable, and a late-joining evaluator gets the last 100.
PASSTHROUGH_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
