"""spotvlm_ros: real-time cloud-edge VLM answers by Context Transfer, for ROS 2."""

__version__ = '0.1.0'
