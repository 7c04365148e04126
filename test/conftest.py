"""Test-wide environment: loopback-only ROS discovery on a domain of this run's own, no hub."""

import os

# Before rclpy is imported anywhere: every run gets its own domain so parallel runs never meet.
os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('ROS_PYTHON_CHECK_FIELDS', '1')
