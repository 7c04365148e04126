"""Thin rclpy nodes; the only package besides the bring-up that imports rclpy."""
