"""The method: context replacement, compression, visual focus, keyframe policy, latency traces. No ROS."""
