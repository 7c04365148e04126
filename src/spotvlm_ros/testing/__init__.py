"""Helpers that check a ROS install from outside the nodes: an echo node and a relay probe (`spotvlm doctor`, tests)."""
